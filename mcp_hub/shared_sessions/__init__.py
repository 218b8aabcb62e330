"""2025-era MCP sessions that any replica serves: state in Redis, server-to-client messages over Redis pub/sub.

With `redis:` configured, a session opened on one replica keeps working when its next request lands on another
(a load balancer without stickiness):

- `initialize` writes the session's record (owner, negotiated version, client info and capabilities; later its log
  level) to Redis (`directory.py`, `recorder.py`). A replica that gets a request for a session it does not serve
  reads the record and materialises a local copy of the session, once (`FairSessionManager`); upstream
  connections are the replica's own, shared by all its sessions, so nothing is initialised per request.
- Each replica's server-initiated requests carry the replica in their ids (`dispatcher.py`), so a client's answer
  posted to another replica is published to the one waiting for it.
- Messages for an SSE stream open on another replica (the standalone GET stream, or a resumed request stream) are
  published to that replica, which writes them on the stream (`outbound.py`).
- The SSE events of each session are kept in a Redis stream, so `Last-Event-ID` resumes on any replica
  (`events.py`). A log level set anywhere, the end of the session (DELETE), and a client's
  `notifications/cancelled` are broadcast to every replica.
- 2026-07-28 clients have no session, but their held calls (`mcp_hub/relay/rounds.py`) ride the same channels: the
  `requestState` key is shared, and a retry reaching a replica other than the one running its call is passed to
  that one (`held_calls.py`).

Without Redis, sessions stay per process (`mcp_hub/sessions.py`, `mcp_hub/resume.py`). Design, costs and failure
modes: `docs/scale-out.md`.
"""

from mcp_hub.shared_sessions.coordinator import LocalSession, SharedSessions
from mcp_hub.shared_sessions.recorder import RecordSessions

__all__ = ["LocalSession", "RecordSessions", "SharedSessions"]
