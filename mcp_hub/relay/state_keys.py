"""The keys sealing the hub's `requestState` (`rounds.py`): this process's own, or one every replica shares.

The SDK's `RequestStateBoundary` seals and opens each state with a codec; this one is the SDK's AES-GCM codec over
a key ring that can change while the hub runs. It starts with a key of this process, generated at start and never
stored: a state only this process can open. With Redis (`mcp_hub/shared_sessions`), every replica fetches the one
key kept there and seals with it from then on, so any replica opens any replica's state; the process's own key stays
in the ring to open the states sealed before, which name held calls of this process. Should the shared key change
(Redis came back without it, and a replica made a new one), the previous one stays in the ring too, so the states
already handed out still open. No key is ever logged.
"""

from __future__ import annotations

import os

from mcp.server.request_state import AESGCMRequestStateCodec

KEY_BYTES = 32


class StateKeys:
    """A `RequestStateCodec` sealing under the shared key once there is one, else under this process's own."""

    def __init__(self) -> None:
        self._own = os.urandom(KEY_BYTES)
        self._shared: bytes | None = None
        self._codec = AESGCMRequestStateCodec([self._own])

    @property
    def shared(self) -> bool:
        """Whether states are sealed under the key all replicas share."""
        return self._shared is not None

    def share(self, key: bytes) -> None:
        """Seal under `key` from now on (every replica has it); open states sealed under it or the own key."""
        if len(key) < KEY_BYTES:
            raise ValueError(f"a requestState key needs at least {KEY_BYTES} bytes, this one has {len(key)}")
        if key == self._shared:
            return
        previous = [self._shared] if self._shared is not None else []
        self._shared = key
        self._codec = AESGCMRequestStateCodec([key, *previous, self._own])

    def seal(self, payload: bytes) -> str:
        return self._codec.seal(payload)

    def unseal(self, token: str) -> bytes:
        return self._codec.unseal(token)
