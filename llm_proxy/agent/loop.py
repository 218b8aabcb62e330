"""Agent mode's loop, in chat completions format: model call, gateway tools, model call, ... until an answer.

Each step, in order:

1. admission for the model call (`Pipeline.admit`: allowlist, rate limits, budget reservations at the worst case);
   from the second step on, a limit that refuses it ends the run with a note saying so (the first step's refusal
   is the request's ordinary error);
2. the model call, routed with retries and failover, then settled with its usage;
3. the turn decides: no tool calls is the answer; any client tool call ends the run and goes back to the client
   (that turn's gateway tool calls are dropped, not run: the client's history cannot show them); gateway tool
   calls only, at the last step, end the run with a note; otherwise the tools run (concurrently with
   `parallel`), the assistant message and the tool results are appended, and the next step begins.

The request's one audit record (its exchange) carries the sum of the steps' usage and cost and
`details.agent = {steps, tools, stopped}`; each tool call has its own `tool_call` audit record from the hub.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from decimal import Decimal
from typing import Any

import anyio

from llm_proxy import estimate
from llm_proxy.agent.events import AgentItem, Chunk, RunEnded, StopReason, ToolCallFinished, ToolCallStarted
from llm_proxy.agent.host import AgentTool, ToolHost, ToolOutput
from llm_proxy.agent.turns import ToolCall, Turn, TurnAssembler, add_usage, arguments_of, stop_note, tool_message
from llm_proxy.operations import Direct, first_stream
from llm_proxy.pipeline import Exchange, Pipeline, Plan, counted_usage, max_output_tokens
from llm_proxy.wire import openai
from toolpolicy.errors import InvalidRequest, LimitExceeded
from toolpolicy.governor import Usage
from toolpolicy.types import AgentPolicy, Principal

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Names OpenAI-style function tools may have: a hub tool named otherwise is not offered."""
_DROPPED = ("fallbacks", "stream", "stream_options", "n")


class AgentLoop:
    """Agent mode's entry point: whether a request is taken, and one `AgentRun` per request that is."""

    def __init__(self, pipeline: Pipeline, host: ToolHost) -> None:
        self.pipeline = pipeline
        self.host = host

    def offers(self, principal: Principal) -> bool:
        """Whether the key's agent mode has any tool to offer now."""
        return principal.agent is not None and any(
            FUNCTION_NAME.match(tool.name) for tool in self.host.tools(principal, principal.agent)
        )

    def begin(
        self,
        exchange: Exchange,
        body: dict[str, Any],
        fallbacks: list[str],
        *,
        policy: AgentPolicy | None = None,
        ask_first: Collection[str] = (),
    ) -> AgentRun | None:
        """A run of chat completions `body` for the exchange's key, or None when the key is not in agent mode or
        no tool of its `agent.tools` is available now (the request is then served as usual).

        `policy` replaces the key's `agent` for this request (e.g. the Responses API's per-request `mcp` tools);
        the key's `mcp` allowlist applies all the same. Tools named in `ask_first` are offered but not run: a turn
        that calls one ends the run as a client tool call does (the Responses API asks the client's approval).
        """
        principal = exchange.principal
        policy = policy or (principal.agent if principal is not None else None)
        if principal is None or policy is None:
            return None
        n = body.get("n")
        if n is not None and n != 1:
            raise InvalidRequest("'n' must be 1 for a key in agent mode (one conversation runs its tools)", param="n")
        client = client_tool_names(body)
        offered = [
            tool
            for tool in self.host.tools(principal, policy)
            if tool.name not in client and FUNCTION_NAME.match(tool.name)
        ]
        if not offered:
            return None
        run = AgentRun(self.pipeline, self.host, exchange, principal, policy, body, offered, fallbacks)
        run.gateway -= set(ask_first)
        return run


def client_tool_names(body: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            names.add(str(tool["function"].get("name")))
    return names


class AgentRun:
    """One request's loop. Use `complete()` for the final chat completion, or `open_stream()` for its items.

    `exchange` must be authenticated (its principal in agent mode) and name the requested model; the run sets its
    usage, cost, admission (the last step's) and `details["agent"]`. Finishing the exchange (its audit record) is
    the caller's, once the response is out.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        host: ToolHost,
        exchange: Exchange,
        principal: Principal,
        policy: AgentPolicy,
        body: dict[str, Any],
        tools: list[AgentTool],
        fallbacks: list[str],
    ) -> None:
        self.pipeline, self.host, self.exchange = pipeline, host, exchange
        self.principal, self.policy, self.fallbacks = principal, policy, fallbacks
        self.offered = tools
        """The gateway's tools offered to the model."""
        self.gateway = {tool.name for tool in tools}
        """The names of the tools the run calls itself."""
        self.log: list[ToolCallFinished] = []
        """Every tool call the run made, in order."""
        self.body = {name: value for name, value in body.items() if name not in _DROPPED}
        self.body["tools"] = [*(body.get("tools") or ()), *(tool.function() for tool in tools)]
        self.messages: list[Any] = list(body.get("messages") or ())
        self.steps = 0
        self.called: list[str] = []
        self.usage: Usage | None = None
        self.cost: Decimal | None = None
        self.refusal = ""
        """The limit's message, when one ended the run."""
        self._unstarted: tuple[Plan, dict[str, Any], AsyncGenerator[dict[str, Any], None], Any] | None = None
        self._note(None)

    # -- one step -----------------------------------------------------------------------------------------------

    def _step_body(self, *, stream: bool) -> dict[str, Any]:
        body = {**self.body, "messages": self.messages}
        choice = body.get("tool_choice")
        if self.steps >= 1 and (choice == "required" or isinstance(choice, dict)):  # `steps` made so far
            body["tool_choice"] = "auto"  # a forced tool is forced once: forced again, the loop could never end
        if stream:
            body["stream"], body["stream_options"] = True, {"include_usage": True}
        return body

    async def _admit(self, body: dict[str, Any]) -> Plan | None:
        """Admission for the next model call; None when a limit refuses a step after the first."""
        self.steps += 1
        self._note(None)
        try:
            return await self.pipeline.admit(
                self.exchange,
                self.fallbacks,
                input_tokens=estimate.request_input(body),
                max_output_tokens=max_output_tokens(body),
            )
        except LimitExceeded as exc:
            if not self._refused(exc):
                raise
            return None

    def _refused(self, exc: LimitExceeded) -> bool:
        """Whether a limit's refusal of this step ends the run with a note (any step after the first)."""
        if self.steps == 1:
            return False
        self.steps -= 1
        self.refusal = exc.message
        self._note("budget")
        return True

    async def _settle(self, plan: Plan, usage: Usage) -> None:
        cost = await plan.admission.settle(usage)
        self.usage = add_usage(self.usage, usage)
        if cost is not None:
            self.cost = (self.cost or Decimal(0)) + cost
        self.exchange.usage, self.exchange.cost = self.usage, self.cost

    async def _release(self, plan: Plan) -> None:
        with anyio.CancelScope(shield=True):
            await plan.admission.release()

    def _note(self, stopped: StopReason | None) -> None:
        """Keep the audit record's `details.agent` current; `stopped` stays null unless the run ended normally."""
        self.stopped = stopped
        self.exchange.details["agent"] = {"steps": self.steps, "tools": list(self.called), "stopped": stopped}

    async def _run_tools(self, calls: list[ToolCall]) -> list[ToolOutput]:
        outputs: list[ToolOutput | None] = [None] * len(calls)

        async def run(index: int, call: ToolCall) -> None:
            arguments = arguments_of(call)
            if isinstance(arguments, ToolOutput):
                outputs[index] = arguments
                return
            request_id = self.exchange.request_id
            outputs[index] = await self.host.call(
                self.principal, self.policy, call.name, arguments, request_id=request_id
            )

        self.called += [call.name for call in calls]
        if self.policy.parallel and len(calls) > 1:
            async with anyio.create_task_group() as group:
                for index, call in enumerate(calls):
                    group.start_soon(run, index, call)
        else:
            for index, call in enumerate(calls):
                await run(index, call)
        self._note(self.stopped)
        done = [output or ToolOutput("no output", is_error=True) for output in outputs]
        self.log += [
            ToolCallFinished(self.steps, call.call_id, call.name, call.arguments, output)
            for call, output in zip(calls, done, strict=True)
        ]
        return done

    def _continue_with(self, turn: Turn, calls: list[ToolCall], outputs: list[ToolOutput]) -> None:
        self.messages = [
            *self.messages,
            turn.assistant_message(calls),
            *(tool_message(call, output) for call, output in zip(calls, outputs, strict=True)),
        ]

    # -- not streamed -------------------------------------------------------------------------------------------

    async def complete(self) -> dict[str, Any]:
        """The final chat completion (its `usage` the sum of every step's); raises the first step's errors."""
        last: dict[str, Any] = {}
        while True:
            body = self._step_body(stream=False)
            plan = await self._admit(body)
            if plan is None:
                return self._stopped_completion(last, stop_note("budget", self.steps, self.refusal), "")
            operation = Direct("chat", body)
            try:
                reply = await self.pipeline.router.run(
                    plan.targets, plan.admission, self.exchange.trace, operation.send, operation.supports
                )
            except LimitExceeded as exc:
                # The key's budgets are taken per target, when the router attempts one.
                await self._release(plan)
                if not self._refused(exc):
                    raise
                return self._stopped_completion(last, stop_note("budget", self.steps, self.refusal), "")
            except BaseException:
                await self._release(plan)
                raise
            choice = (reply.body.get("choices") or [{}])[0]
            turn = Turn.of_message(choice.get("message") or {}, choice.get("finish_reason"))
            route = self.exchange.trace.route or self.exchange.requested
            usage = reply.usage or await counted_usage(route, body["messages"], [turn.text, *self._arguments(turn)])
            await self._settle(plan, usage)
            last = reply.body
            gateway, client = turn.split(self.gateway)
            if client:
                self._note("client_tools")
                return self._answer(last, turn.assistant_message(client), "tool_calls")
            if not gateway:
                self._note("answered")
                return self._answer(last, None, None)
            if self.steps >= self.policy.max_steps:
                self._note("max_steps")
                names = ", ".join(call.name for call in gateway)
                return self._stopped_completion(last, stop_note("max_steps", self.steps, names), turn.text)
            self._continue_with(turn, gateway, await self._run_tools(gateway))

    @staticmethod
    def _arguments(turn: Turn) -> list[str]:
        return [call.arguments for call in turn.calls]

    def _answer(self, body: dict[str, Any], message: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
        answer = dict(body)
        if message is not None:
            choice = dict((answer.get("choices") or [{}])[0])
            answer["choices"] = [{**choice, "index": 0, "message": message, "finish_reason": finish}]
        answer["usage"] = openai.usage_body(self.usage or Usage())
        return answer

    def _stopped_completion(self, last: dict[str, Any], note: str, text: str) -> dict[str, Any]:
        content = f"{text}\n\n{note}" if text else note
        message = {"role": "assistant", "content": content, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        model = str(last.get("model") or self.exchange.trace.route or self.exchange.requested)
        created = last.get("created") if isinstance(last.get("created"), int) else None
        completion_id = str(last.get("id") or f"chatcmpl-{self.exchange.request_id}")
        return openai.completion(completion_id, model, [choice], self.usage or Usage(), created=created)

    # -- streamed -----------------------------------------------------------------------------------------------

    async def open_stream(self) -> AsyncGenerator[AgentItem, None]:
        """Admit and open the first model call (its errors raise here, before any response is sent), then the
        items: `Chunk`s (one chunk stream: the same id, model and created throughout, text as it comes, the
        answer's finish chunk, then a usage-only chunk with the total), `ToolCallStarted`/`ToolCallFinished`
        between steps, and `RunEnded` last."""
        opened = await self._open_step()
        assert opened is not None  # the first step raises rather than stop
        self._unstarted = opened
        return self._items(opened)

    async def close(self) -> None:
        """Close the first model call's stream and release its reservation if the items were never read."""
        opened, self._unstarted = self._unstarted, None
        if opened is not None:
            plan, _, items, _ = opened
            with anyio.CancelScope(shield=True):
                await items.aclose()
            await self._release(plan)

    async def _open_step(self) -> tuple[Plan, dict[str, Any], AsyncGenerator[dict[str, Any], None], Any] | None:
        body = self._step_body(stream=True)
        plan = await self._admit(body)
        if plan is None:
            return None
        operation = Direct("chat", body)

        try:
            items, first = await first_stream(
                self.pipeline.router, plan.targets, plan.admission, self.exchange.trace, operation
            )
        except LimitExceeded as exc:
            await self._release(plan)
            if not self._refused(exc):
                raise
            return None
        except BaseException:
            await self._release(plan)
            raise
        return plan, body, items, first

    async def _items(
        self, opened: tuple[Plan, dict[str, Any], AsyncGenerator[dict[str, Any], None], Any]
    ) -> AsyncGenerator[AgentItem, None]:
        self._unstarted = None
        head: dict[str, Any] = {}
        """`id`, `model` and `created` of every chunk: the first model call's."""
        wrote_text = False
        current: tuple[Plan, dict[str, Any], AsyncGenerator[dict[str, Any], None], Any] | None = opened

        def chunk(delta: dict[str, Any], finish: str | None = None) -> Chunk:
            choices = [openai.delta_choice(delta, finish)]
            return Chunk(openai.chunk(head["id"], head["model"], head["created"], choices))

        def total() -> Chunk:
            return Chunk(openai.chunk(head["id"], head["model"], head["created"], [], self.usage or Usage()))

        while current is not None:
            plan, body, items, first = current
            assembler = TurnAssembler()
            settled = step_wrote = False
            try:
                async with aclosing(items):
                    item: dict[str, Any] | None = first
                    while item is not None:
                        if not head:
                            head = _head(item, self.exchange)
                        relay = assembler.feed(item)
                        if relay:
                            if not wrote_text:
                                relay = {"role": "assistant", **relay}
                            elif not step_wrote and "content" in relay:
                                relay["content"] = "\n\n" + relay["content"]  # a new step's text, set apart
                            wrote_text = step_wrote = True
                            yield chunk(relay)
                        item = await anext(items, None)
                turn = assembler.finish()
                route = self.exchange.trace.route or self.exchange.requested
                usage = assembler.usage or await counted_usage(
                    route, body["messages"], [turn.text, *self._arguments(turn)]
                )
                await self._settle(plan, usage)
                settled = True
            finally:
                if not settled:
                    await self._release(plan)
            gateway, client = turn.split(self.gateway)
            if client:
                self._note("client_tools")
                yield chunk({"tool_calls": [call.wire(index) for index, call in enumerate(client)]})
                yield chunk({}, "tool_calls")
                break
            if not gateway:
                self._note("answered")
                yield chunk({}, turn.finish_reason or "stop")
                break
            if self.steps >= self.policy.max_steps:
                self._note("max_steps")
                note = stop_note("max_steps", self.steps, ", ".join(call.name for call in gateway))
                yield chunk({"content": f"\n\n{note}" if wrote_text else note})
                yield chunk({}, "stop")
                break
            for call in gateway:
                yield ToolCallStarted(self.steps, call.call_id, call.name, call.arguments)
            outputs = await self._run_tools(gateway)
            for call, output in zip(gateway, outputs, strict=True):
                yield ToolCallFinished(self.steps, call.call_id, call.name, call.arguments, output)
            self._continue_with(turn, gateway, outputs)
            current = await self._open_step()
            if current is None:
                note = stop_note("budget", self.steps, self.refusal)
                yield chunk({"content": f"\n\n{note}" if wrote_text else note})
                yield chunk({}, "stop")
        yield total()
        assert self.stopped is not None  # every way out of the loop above says why
        yield RunEnded(self.stopped, self.steps)


def _head(chunk: dict[str, Any], exchange: Exchange) -> dict[str, Any]:
    created = chunk.get("created")
    return {
        "id": str(chunk.get("id") or f"chatcmpl-{exchange.request_id}"),
        "model": str(chunk.get("model") or exchange.trace.route or exchange.requested),
        "created": created if isinstance(created, int) else int(time.time()),
    }
