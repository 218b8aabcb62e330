"""Per-key shares of what the hub's clients hold at once: legacy sessions, listen streams, Code Mode runs.

Each pool is a `KeySlots`: a count per key of what it holds. `acquire` refuses with `KeyCapReached` (HTTP 429,
JSON-RPC -32029) once the key holds its cap, naming the key, the count and the cap; otherwise it returns a `Slot`
that whoever ends the held thing releases, exactly once (a session's close or idle timeout, a stream's end or its
client's disconnect, a run's end or cancellation). Acquiring never awaits, so check-and-count is atomic on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from toolpolicy.errors import LimitExceeded
from toolpolicy.key_caps import McpKeyCaps
from toolpolicy.types import Principal

logger = logging.getLogger(__name__)


class KeyCapReached(LimitExceeded):
    code = "key_cap_reached"

    def __init__(self, key_name: str, held: int, cap: int, what: str, hint: str) -> None:
        super().__init__(f"key {key_name!r} holds {held} of {cap} {what}; {hint}")
        self.key_name, self.held, self.cap = key_name, held, cap


class Slot:
    """One unit a key holds of a pool; `release` (or leaving its `with` block) gives it back, once."""

    __slots__ = ("_key_id", "_pool", "released")

    def __init__(self, pool: KeySlots, key_id: str) -> None:
        self._pool = pool
        self._key_id = key_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._pool._give_back(self._key_id)

    def __enter__(self) -> Slot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


class KeySlots:
    """A pool shared by every key, with a cap on what each key may hold of it at once."""

    def __init__(self, what: str, hint: str, cap: Callable[[Principal], int]) -> None:
        self.what = what
        """What is counted, in the plural, as errors name it: `MCP sessions`."""
        self.hint = hint
        """What the refused client can do about it."""
        self.cap = cap
        self._held: dict[str, int] = {}

    def held(self, key_id: str) -> int:
        return self._held.get(key_id, 0)

    def acquire(self, principal: Principal) -> Slot:
        """Count one more held by `principal`'s key, or raise KeyCapReached when it already holds its cap."""
        cap = self.cap(principal)
        held = self.held(principal.key_id)
        if held >= cap:
            logger.info("key %r refused one more of its %d %s", principal.key_name, cap, self.what)
            raise KeyCapReached(principal.key_name, held, cap, self.what, self.hint)
        self._held[principal.key_id] = held + 1
        return Slot(self, principal.key_id)

    def _give_back(self, key_id: str) -> None:
        left = self._held.get(key_id, 0) - 1
        if left > 0:
            self._held[key_id] = left
        else:
            self._held.pop(key_id, None)


class KeyCaps:
    """Each key's caps: the hub's `mcp.per_key`, replaced by the key's own `mcp_rate_limit.concurrency`."""

    def __init__(self, defaults: McpKeyCaps, sandbox_workers: int) -> None:
        self.defaults = defaults
        self.sandbox_workers = sandbox_workers

    def sessions(self, principal: Principal) -> int:
        return _override(principal, "sessions") or self.defaults.sessions

    def listen_streams(self, principal: Principal) -> int:
        return _override(principal, "listen_streams") or self.defaults.listen_streams

    def code_mode_runs(self, principal: Principal) -> int:
        return _override(principal, "code_mode_runs") or self.defaults.code_mode_runs_of(self.sandbox_workers)

    def session_slots(self) -> KeySlots:
        return KeySlots("MCP sessions", "close one (DELETE it) or let one idle out first", self.sessions)

    def listen_slots(self) -> KeySlots:
        return KeySlots("subscriptions/listen streams", "close one first", self.listen_streams)

    def code_mode_slots(self) -> KeySlots:
        return KeySlots("Code Mode sandbox runs", "wait for one to finish", self.code_mode_runs)


def _override(principal: Principal, name: str) -> int | None:
    # Stored as validated JSON (`McpKeyCapOverrides`), from the config file or the admin API.
    rate: Any = principal.limits.get("mcp_rate_limit") or {}
    concurrency: Any = rate.get("concurrency") or {}
    value = concurrency.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
