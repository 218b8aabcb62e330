"""Input rounds for 2026-07-28 clients: an upstream's questions become `InputRequiredResult`s, answered on retries.

A 2026-07-28 client has no session, so nothing can be sent to it mid-call. Whatever the upstream's era, a
`tools/call`, `prompts/get` or `resources/read` from such a client is served as a *held call*: the hub's work (the
governed pipeline, the upstream request) runs in a background task, and the client's request waits for the first of

- the work finishing: its result (or error) is the answer;
- a 2026-07-28 upstream answering with an `InputRequiredResult`: passed through, its `input_requests` (only those the
  client declared capabilities for; -32021 with `data.requiredCapabilities` when none is left) and its opaque
  `request_state` wrapped inside the hub's own state. The held call is then over: the client's retry is a new call
  carrying the client's `input_responses` and the upstream's state, unwrapped;
- a 2025-era upstream asking through its back channel (`sampling/createMessage`, ...): the question goes to the
  client as an `InputRequiredResult` naming the held call, the upstream request stays open, and the client's retry
  delivers the answer and waits again. A retry without the answer is asked the same question again.

The hub's state is sealed by `RequestStateBoundary` (the SDK's, in the hub's server middleware): AES-GCM
(`state_keys.py`), bound to the method, the tool (prompt, URI) as the client names it, which includes the server, a
digest of the arguments and the caller's key, for `STATE_TTL` seconds; tampered or foreign state gets -32602.

A held call runs in the process that started it. Without Redis, the key is this process's own: a retry that reaches
another replica, or comes after the question expired, gets -32602 saying so, and the client starts over. With Redis
(`mcp_hub/shared_sessions/held_calls.py`), the key is shared and the state names the replica holding the call
(`replica`): a retry reaching another replica is sent to that one (`remote`), which feeds the answer into the call
(`answer`) and sends back what comes of it.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_hub.relay.asks import Answer, Ask, refusal, result_type

logger = logging.getLogger(__name__)

R = TypeVar("R")
STATE_TTL = 600.0
"""Seconds a client has to retry with the answers to an input request."""
MAX_HELD = 1024
"""Held calls one process keeps at once; one more is refused rather than let memory grow."""
EXPIRED = (
    "this answer belongs to a call the MCP hub no longer holds (its question expired, or the hub instance holding it "
    "is gone); start the call again without requestState"
)
UNHELD = "the MCP server asked a question during a call the MCP hub did not hold for it; call again"
TOO_MANY = "the MCP hub holds too many calls waiting for their clients' answers; try again later"


class Remote(Protocol):
    """Where a retry for a call held by another replica goes (`mcp_hub/shared_sessions/held_calls.py`)."""

    async def resume(self, owner: str, held_id: str, responses: types.InputResponses | None) -> Any:
        """What `Rounds.answer` gives on replica `owner`: a result, the next `InputRequiredResult`, or its error."""
        ...


class InputRequired(Exception):
    """An upstream answered with an `InputRequiredResult`: the client's request answers with it."""

    def __init__(self, result: types.InputRequiredResult) -> None:
        super().__init__("input required")
        self.result = result


@dataclass
class RoundInput:
    """What a 2026-07-28 client's retry brings for the upstream: its answers and the upstream's own state."""

    responses: types.InputResponses | None
    upstream_state: str | None

    def take(self) -> tuple[types.InputResponses | None, str | None]:
        """Both, once: a second upstream request in the same call (Code Mode) starts fresh."""
        taken = self.responses, self.upstream_state
        self.responses, self.upstream_state = None, None
        return taken


@dataclass(eq=False)
class Question:
    request: Ask
    answer: Answer | types.ErrorData | None = None
    answered: anyio.Event = field(default_factory=anyio.Event)


class InlineCall:
    """A 2026-07-28 client request whose upstreams cannot ask mid-call, its work run in the request's own task.

    Every connected upstream speaks 2026-07-28 (no back channel: its questions come back as an `InputRequiredResult`,
    passed through like a held call's), so nothing ever waits on the client's retry and no background task, event or
    cancel scope is needed. An upstream that reconnected in the 2025 era meanwhile and asks anyway is refused.
    """

    __slots__ = ("round_input",)

    def __init__(self, round_input: RoundInput) -> None:
        self.round_input = round_input

    async def ask(self, request: Ask, timeout: float) -> Answer | types.ErrorData:
        return types.ErrorData(code=types.INTERNAL_ERROR, message=UNHELD)


class HeldCall:
    """One 2026-07-28 client request's work, running in the background while its client is asked questions."""

    def __init__(self, held_id: str, round_input: RoundInput, capabilities: types.ClientCapabilities | None) -> None:
        self.id = held_id
        self.round_input = round_input
        self.capabilities = capabilities
        self.questions: dict[str, Question] = {}
        self.outcome: tuple[Any, BaseException | None] | None = None
        self.scope = anyio.CancelScope()
        self._changed = anyio.Event()
        self._keys = itertools.count(1)

    def changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    def open_questions(self) -> dict[str, Question]:
        return {key: q for key, q in self.questions.items() if not q.answered.is_set()}

    async def ask(self, request: Ask, timeout: float) -> Answer | types.ErrorData:
        """Put the upstream's question to the client (on its next round) and wait for the answer."""
        key = f"{request.method.split('/')[0]}-{next(self._keys)}"
        question = Question(request)
        self.questions[key] = question
        self.changed()
        with anyio.move_on_after(timeout):
            await question.answered.wait()
        if question.answer is None:
            question.answered.set()
            return types.ErrorData(code=types.REQUEST_TIMEOUT, message="the client did not answer in time")
        return question.answer

    def deliver(self, responses: types.InputResponses | None) -> None:
        for key, question in self.open_questions().items():
            response = (responses or {}).get(key)
            if response is None:
                continue  # asked again on this round
            question.answer = _as_answer(question.request, response)
            question.answered.set()
        self.changed()


def _as_answer(request: Ask, response: types.InputResponse) -> Answer | types.ErrorData:
    expected = result_type(request)
    if isinstance(response, expected):
        return response
    try:
        return expected.model_validate(response.model_dump(by_alias=True, mode="json", exclude_none=True))
    except ValidationError:
        return types.ErrorData(
            code=types.INVALID_PARAMS, message=f"the client's answer is not a {request.method} result"
        )


def encode_state(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def decode_state(plaintext: str | None) -> dict[str, Any]:
    """The hub's state as the boundary unsealed it (or {} for a first round)."""
    if plaintext is None:
        return {}
    try:
        state = json.loads(plaintext)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise MCPError(types.INVALID_PARAMS, "Invalid or expired requestState", {"reason": "invalid_request_state"})
    return state


def declared_only(result: types.InputRequiredResult, capabilities: types.ClientCapabilities | None) -> dict[str, Any]:
    """The input requests the client can answer; -32021 naming what it lacks when it can answer none of them."""
    requests = result.input_requests or {}
    kept = {key: request for key, request in requests.items() if refusal(request, capabilities) is None}
    if requests and not kept:
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            "the server needs input this client did not declare it can give",
            {"requiredCapabilities": _required(requests.values())},
        )
    return kept


def _required(requests: Any) -> dict[str, Any]:
    needed: dict[str, Any] = {}
    for request in requests:
        if isinstance(request, types.CreateMessageRequest):
            needed["sampling"] = {"tools": {}} if request.params.tools else {}
        elif isinstance(request, types.ListRootsRequest):
            needed["roots"] = {}
        else:
            mode = "url" if isinstance(request.params, types.ElicitRequestURLParams) else "form"
            needed.setdefault("elicitation", {})[mode] = {}
    return needed


class Rounds:
    """The held calls of this process, and how a 2026-07-28 client request is served through them."""

    def __init__(self, *, linger: float) -> None:
        self.linger = linger
        """Seconds a held call's finished outcome, or its unanswered question, waits for the client's retry."""
        self.held: dict[str, HeldCall] = {}
        self.tg: TaskGroup | None = None
        self.replica: str | None = None
        """This process among replicas, named in its held calls' state, when retries may reach another replica."""
        self.remote: Remote | None = None
        """Passes a retry on to the replica holding its call (with `replica`)."""

    def __len__(self) -> int:
        return len(self.held)

    async def serve(
        self,
        state: str | None,
        responses: types.InputResponses | None,
        capabilities: types.ClientCapabilities | None,
        start: Callable[[HeldCall | InlineCall], Awaitable[R]],
        *,
        inline: bool = False,
    ) -> R | types.InputRequiredResult:
        """Answer one round: resume the held call the state names, or start `start` as a new one.

        With `inline` (no upstream can ask mid-call) a new call runs in this task instead, and is never held.
        """
        hub_state = decode_state(state)
        held_id = hub_state.get("held")
        if isinstance(held_id, str):
            owner = hub_state.get("at")
            if isinstance(owner, str) and owner != self.replica:
                if self.remote is None:
                    raise MCPError(types.INVALID_PARAMS, EXPIRED, {"reason": "held_call_gone"})
                return cast("R | types.InputRequiredResult", await self.remote.resume(owner, held_id, responses))
            return cast("R | types.InputRequiredResult", await self.answer(held_id, responses))
        upstream_state = hub_state.get("upstream")
        if self.tg is None:
            raise MCPError(types.INTERNAL_ERROR, "the MCP hub is not running")
        round_input = RoundInput(responses, upstream_state if isinstance(upstream_state, str) else None)
        if inline:
            try:
                return await start(InlineCall(round_input))
            except InputRequired as exc:
                return self._passed_through(exc.result, capabilities)
        if len(self.held) >= MAX_HELD:
            raise MCPError(types.INTERNAL_ERROR, TOO_MANY)
        held = HeldCall(secrets.token_urlsafe(16), round_input, capabilities)
        self.held[held.id] = held
        self.tg.start_soon(self._run, held, start)
        try:
            return cast("R | types.InputRequiredResult", await self._next(held))
        except anyio.get_cancelled_exc_class():
            if not held.open_questions():
                held.scope.cancel()  # the client gave up before anything was asked of it
            raise

    async def answer(self, held_id: str, responses: types.InputResponses | None) -> Any:
        """Feed a retry's answers into a call held here; its result, or its next question (`InputRequiredResult`)."""
        held = self.held.get(held_id)
        if held is None:
            raise MCPError(types.INVALID_PARAMS, EXPIRED, {"reason": "held_call_gone"})
        held.deliver(responses)
        return await self._next(held)

    async def _run(self, held: HeldCall, start: Callable[[HeldCall | InlineCall], Awaitable[Any]]) -> None:
        try:
            with held.scope:
                try:
                    held.outcome = (await start(held), None)
                except Exception as exc:
                    held.outcome = (None, exc)
                held.changed()
                # Kept for a retry that is on its way with the last answer; nobody else collects it.
                await anyio.sleep(self.linger)
        finally:
            self.held.pop(held.id, None)

    async def _next(self, held: HeldCall) -> Any:
        while True:
            if held.outcome is not None:
                self.held.pop(held.id, None)
                held.scope.cancel()
                result, error = held.outcome
                if isinstance(error, InputRequired):
                    return self._passed_through(error.result, held.capabilities)
                if error is not None:
                    raise error
                return result
            questions = held.open_questions()
            if questions:
                return types.InputRequiredResult(
                    input_requests={key: q.request for key, q in questions.items()},
                    request_state=encode_state(self._held_state(held)),
                )
            await held.wait_change()

    def _held_state(self, held: HeldCall) -> dict[str, Any]:
        state: dict[str, Any] = {"held": held.id}
        if self.replica is not None:
            state["at"] = self.replica
        return state

    @staticmethod
    def _passed_through(
        result: types.InputRequiredResult, capabilities: types.ClientCapabilities | None
    ) -> types.InputRequiredResult:
        return types.InputRequiredResult(
            input_requests=declared_only(result, capabilities) or None,
            request_state=encode_state({"upstream": result.request_state}),
        )
