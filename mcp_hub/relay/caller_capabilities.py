"""The calling client's capabilities, forwarded to 2026-07-28 upstreams with each request made on its behalf.

In 2026-07-28 every request carries its client's capabilities in `_meta` (`io.modelcontextprotocol/clientCapabilities`),
and a server decides per request what it may ask for, or refuses with -32021 naming what it needs. The SDK's client
stamps each request with the capabilities it declared when it connected (the hub's: everything the hub can relay) and
overwrites whatever a call's own `meta=` says about them, so the hub rewrites the stamp on the way out instead, on the
write side of the upstream's transport. A request sent while a client request is being served (`DOWNSTREAM` is set in
the sending task: tool calls, prompts, resource reads, completions, Code Mode's calls) carries what that client
declared (at `initialize` for a 2025-era client, in its request's `_meta` for a 2026-07-28 one), intersected with what
the hub's upstream connection declared: the hub cannot relay a capability it does not have (extensions, experimental
ones, sampling with context). Sampling stays declared when the gateway answers this server's sampling requests
itself (`sampling:` with `when` other than `never`). The hub's own requests (listings, change subscriptions) keep
the hub's capabilities.

2025-era upstreams have no per-request capabilities: they see the hub's, declared once at `initialize`, and the relay
refuses what the calling client lacks with the standard errors (`asks.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import mcp_types as types
from mcp.client._transport import WriteStream
from mcp.shared.message import SessionMessage

from mcp_hub.relay.calls import DOWNSTREAM
from mcp_hub.streams import WriteWrapper

CAPABILITIES_KEY = types.CLIENT_CAPABILITIES_META_KEY


def common(client: Mapping[str, Any], hub: Mapping[str, Any]) -> dict[str, Any]:
    """The capabilities (wire form) declared by both: nested objects intersected, flags true only if true in both."""
    shared: dict[str, Any] = {}
    for key, value in client.items():
        if key not in hub:
            continue
        ours = hub[key]
        if isinstance(value, Mapping) and isinstance(ours, Mapping):
            shared[key] = common(value, ours)
        elif isinstance(value, bool) and isinstance(ours, bool):
            shared[key] = value and ours
        elif type(value) is type(ours) and value == ours:
            shared[key] = value
    return shared


def forwarded(
    client: types.ClientCapabilities | None, hub: Mapping[str, Any], *, gateway_samples: bool
) -> dict[str, Any]:
    """What an upstream is told the client behind a request can do, given what the hub's connection declared."""
    declared = client.model_dump(by_alias=True, mode="json", exclude_none=True) if client is not None else {}
    shared = common(declared, hub)
    if gateway_samples and "sampling" in hub:
        shared["sampling"] = hub["sampling"]  # the gateway's model answers whatever the client cannot
    return shared


class ForwardingStream(WriteWrapper):
    """An upstream transport's write stream that gives each request the capabilities of the client it is made for."""

    def __init__(self, inner: WriteStream[SessionMessage], *, gateway_samples: Callable[[], bool]) -> None:
        super().__init__(inner)
        self._gateway_samples = gateway_samples
        """Whether the gateway answers this server's sampling requests (asked per request: it is attached later)."""

    def sent(self, item: SessionMessage) -> SessionMessage:
        # The dispatcher writes in the task that made the request, so `DOWNSTREAM` here is that request's client.
        downstream = DOWNSTREAM.get()
        message = item.message
        if downstream is None or not isinstance(message, types.JSONRPCRequest) or message.params is None:
            return item
        meta = message.params.get("_meta")
        if not isinstance(meta, Mapping) or not isinstance(hub := meta.get(CAPABILITIES_KEY), Mapping):
            return item  # a 2025-era request: capabilities were declared once, at initialize
        capabilities = forwarded(downstream.capabilities, hub, gateway_samples=self._gateway_samples())
        params = {**message.params, "_meta": {**meta, CAPABILITIES_KEY: capabilities}}
        return replace(item, message=message.model_copy(update={"params": params}))
