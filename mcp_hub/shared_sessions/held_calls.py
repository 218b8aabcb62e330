"""Held calls any replica resumes: a 2026-07-28 client's retry that lands on a replica other than the one holding it.

A held call (`mcp_hub/relay/rounds.py`) runs in the replica that started it, its state naming that replica (the
owner). The retry carrying the client's answers may reach any replica: the key the state is sealed under is shared
(`mcp_hub/relay/state_keys.py`), so the receiving replica opens and checks it as the owner would (the caller's key,
the method, the tool and its arguments), and the caller's key was checked there on the way in. Then, over the
replicas' channels (`coordinator.py`, `<redis_prefix>mcp:r:<replica>`):

1. the receiving replica sends the owner `held`: the call, the answers, a query id and where to reply;
2. the owner replies `held-ack` at once (or the outcome "call gone" if it no longer holds the call), feeds the answers
   into the call (`Rounds.answer`), and when the call finishes or asks its next question, replies `held-out` with
   the result, the next `InputRequiredResult` (its state naming the owner again) or the JSON-RPC error;
3. the receiving replica returns that from its handler, so its route answers the client in its usual shape (JSON or
   an event stream), its middleware sealing the next state.

Bounds: the owner must acknowledge within `ACK_TIMEOUT` seconds, and while the call runs on it must still listen on
its channel, checked every `OWNER_CHECK_INTERVAL` seconds; the whole wait is bounded by `STATE_TTL`. An owner that is
gone (nobody receives the `held` message), silent, or gone meanwhile gives -32602 telling the client to start the
call again. A client that goes away while waiting withdraws the retry (`held-withdraw`): the owner stops waiting for
it and keeps the outcome for the client's next retry, as it would for a local one.

Governance is the owner's: the call's pipeline (limits, guardrails, audit record) ran there once, when it started;
a retry only delivers answers.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, TypeAdapter, ValidationError

from mcp_hub.relay.rounds import EXPIRED, STATE_TTL, Rounds
from mcp_hub.server import as_mcp_error
from mcp_hub.shared_sessions.coordinator import SharedSessions
from toolpolicy.errors import GatewayError

logger = logging.getLogger(__name__)

ACK_TIMEOUT = 5.0
"""Seconds the owner of a held call has to acknowledge a retry passed on to it."""
OWNER_CHECK_INTERVAL = 5.0
"""Seconds between checks that the owner still listens, while a retry waits for what comes of it."""

GONE = (
    "the MCP hub instance holding this call is gone or did not answer in time; start the call again without "
    "requestState"
)
RESULT_TYPES: dict[str, type[BaseModel]] = {
    cls.__name__: cls
    for cls in (types.CallToolResult, types.GetPromptResult, types.ReadResourceResult, types.InputRequiredResult)
}
"""What a held call may end with, by the name the owner sends (nothing else is rebuilt from a message)."""
_RESPONSES: TypeAdapter[types.InputResponses] = TypeAdapter(types.InputResponses)


@dataclass(eq=False)
class _Waiting:
    """A retry passed on to its owner, waiting here for the owner's acknowledgement, then for the outcome."""

    acked: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: dict[str, Any] | None = None


def _gone(reason: str) -> MCPError:
    return MCPError(types.INVALID_PARAMS, GONE, {"reason": reason})


class HeldCalls:
    """This replica's side of held calls shared over Redis: passing retries on, and serving those passed to it."""

    def __init__(self, shared: SharedSessions, rounds: Rounds, *, ack_timeout: float = ACK_TIMEOUT) -> None:
        self.shared = shared
        self.rounds = rounds
        self.ack_timeout = ack_timeout
        self._waiting: dict[str, _Waiting] = {}
        self._serving: dict[str, anyio.CancelScope] = {}
        rounds.replica = shared.replica
        rounds.remote = self
        shared.handlers.update(
            {
                "held": self._serve,
                "held-ack": self._acked,
                "held-out": self._outcome,
                "held-withdraw": self._withdrawn,
            }
        )

    @property
    def serving(self) -> int:
        """Retries passed on to this replica that it is serving now (each waits for its held call's next step)."""
        return len(self._serving)

    # The replica the retry reached

    async def resume(self, owner: str, held_id: str, responses: types.InputResponses | None) -> Any:
        """Pass a retry on to `owner` and return (or raise) what comes of it there."""
        query = secrets.token_urlsafe(12)
        waiting = self._waiting[query] = _Waiting()
        answers = {key: _dump(response) for key, response in (responses or {}).items()}
        payload = {"t": "held", "h": held_id, "q": query, "r": self.shared.replica, "in": answers}
        try:
            if not await self.shared.publish_to(owner, payload):
                raise _gone("owner_gone")
            with anyio.fail_after(STATE_TTL):
                with anyio.move_on_after(self.ack_timeout):
                    await waiting.acked.wait()
                if not waiting.acked.is_set():
                    raise _gone("owner_silent")
                while not waiting.done.is_set():
                    with anyio.move_on_after(OWNER_CHECK_INTERVAL):
                        await waiting.done.wait()
                    if not waiting.done.is_set() and not await self.shared.alive(owner):
                        raise _gone("owner_gone")
        except TimeoutError:
            raise _gone("owner_silent") from None
        except anyio.get_cancelled_exc_class():
            if not waiting.done.is_set():  # the client went away: the owner keeps the outcome for its next retry
                with anyio.CancelScope(shield=True), anyio.move_on_after(self.ack_timeout):
                    await self.shared.publish_to(owner, {"t": "held-withdraw", "q": query})
            raise
        finally:
            self._waiting.pop(query, None)
        assert waiting.outcome is not None
        return _rebuilt(waiting.outcome)

    async def _acked(self, payload: dict[str, Any]) -> None:
        waiting = self._waiting.get(payload["q"])
        if waiting is not None:
            waiting.acked.set()

    async def _outcome(self, payload: dict[str, Any]) -> None:
        waiting = self._waiting.get(payload["q"])
        if waiting is not None:
            waiting.outcome = payload
            waiting.acked.set()
            waiting.done.set()

    # The owner

    async def _serve(self, payload: dict[str, Any]) -> None:
        query, reply_to, held_id = payload["q"], payload["r"], payload["h"]
        if held_id not in self.rounds.held:
            gone = MCPError(types.INVALID_PARAMS, EXPIRED, {"reason": "held_call_gone"})
            await self.shared.publish_to(reply_to, {"t": "held-out", "q": query, **_failure(gone)})
            return
        outcome: dict[str, Any]
        with anyio.CancelScope() as scope:
            self._serving[query] = scope  # before anything is awaited: a withdrawal may follow at once
            try:
                await self.shared.publish_to(reply_to, {"t": "held-ack", "q": query})
                responses = _RESPONSES.validate_python(payload.get("in") or {}, by_name=False) or None
                result = await self.rounds.answer(held_id, responses)
                outcome = {"ok": type(result).__name__, "v": _dump(result)}
            except Exception as exc:
                outcome = _failure(exc)
            finally:
                self._serving.pop(query, None)
        if scope.cancelled_caught:
            return  # withdrawn: the outcome stays with the call for the client's next retry
        if not await self.shared.publish_to(reply_to, {"t": "held-out", "q": query, **outcome}):
            logger.info("held call %s: what came of a retry could not reach replica %s", held_id[:8], reply_to)

    async def _withdrawn(self, payload: dict[str, Any]) -> None:
        scope = self._serving.get(payload["q"])
        if scope is not None:
            scope.cancel()


def _dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _failure(exc: Exception) -> dict[str, Any]:
    """The JSON-RPC error the owner's handler would have answered with."""
    if isinstance(exc, GatewayError):
        exc = as_mcp_error(exc)
    if isinstance(exc, MCPError):
        return {"err": exc.error.model_dump(mode="json", exclude_none=True)}
    if isinstance(exc, ValidationError):
        return {"err": {"code": types.INVALID_PARAMS, "message": "Invalid request parameters", "data": ""}}
    logger.error("a held call failed", exc_info=exc)
    return {"err": {"code": types.INTERNAL_ERROR, "message": "Internal server error"}}


def _rebuilt(outcome: dict[str, Any]) -> Any:
    """The owner's outcome as the handler here returns it: the result model, or its error raised."""
    error = outcome.get("err")
    if isinstance(error, dict):
        data = types.ErrorData.model_validate(error)
        raise MCPError(data.code, data.message, data.data)
    kind = RESULT_TYPES.get(str(outcome.get("ok")))
    if kind is None:
        raise MCPError(types.INTERNAL_ERROR, f"the MCP hub instance holding this call sent {outcome.get('ok')!r}")
    return kind.model_validate(outcome.get("v"), by_name=False)
