"""The `server:` block: how `isthmus serve` holds its client connections (timeouts and caps against slow or
flooding clients). The HTTP server applies it; these models only describe and validate."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServerSettings(BaseModel):
    """Client connection limits of the HTTP server."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client may take to send a request's line and headers, counted from the connection's opening (or
    from the request's first byte on a kept-alive connection); past this it gets 408 and the connection is closed."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request's body may stall (no byte received while the gateway waits for one); past this the request
    gets 408 (or is cut off) and the connection is closed."""
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    """Seconds an idle kept-alive connection stays open waiting for the next request."""
    max_connections: int = Field(default=4096, ge=1)
    """Client connections open at once. At the cap, a new connection replaces the oldest one that is idle or still
    sending its headers; when every connection is busy with a request, the new one gets 503 and is closed."""
    max_requests: int | None = Field(default=None, ge=1)
    """Requests handled at once (open event streams count); past this, new requests get 503. Null: bounded by
    `max_connections` only."""
    backlog: int = Field(default=2048, ge=1)
    """Connections the kernel queues before the gateway accepts them (the `listen()` backlog)."""
    drain_timeout: float = Field(default=30.0, gt=0)
    """Seconds a stopping replica (SIGTERM) waits for its in-flight requests and streams (chat streams, MCP event
    streams) to finish before it cancels them; it stops accepting and answers `/ready` with 503 at once. Also how
    long a reload lets requests finish on the old configuration. Kubernetes' `terminationGracePeriodSeconds` must
    exceed this plus the preStop pause plus `stop_timeout` twice."""
    stop_timeout: float = Field(default=10.0, gt=0)
    """Seconds each step of shutdown after the drain may take (stopping the LLM proxy, stopping the MCP hub and its
    upstream processes, flushing the audit and spend writers); a step still running then is abandoned, logged, and
    the process exits anyway."""
