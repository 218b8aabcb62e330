"""Agent mode on `POST /v1/responses`: a key's `agent` block, and the request's hosted `mcp` tools (`mcp.py`).

The loop runs in chat completions format (`llm_proxy.agent`), whatever the provider: the request is translated with
`request_to_chat` and the answer back, so a request in agent mode reaches an OpenAI provider that has the Responses
API through chat completions, not natively. The gateway's steps become OpenAI's hosted-MCP output items: an
`mcp_list_tools` item per server offered, an `mcp_call` item per tool call the gateway made, and, for a tool that
needs approval, an `mcp_approval_request` item that ends the response (the tool not run). A continuation
(`previous_response_id`) carrying `mcp_approval_response` items runs the approved calls before the first model call
(their `mcp_call` items come first in its output); a denied one reaches the model as a tool result saying so.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from starlette.responses import Response

from llm_proxy.agent import AgentLoop, AgentRun, Chunk, RunEnded, ToolCallFinished, ToolCallStarted, ToolOutput
from llm_proxy.agent.edge import STEPS_HEADER, STOPPED_HEADER, first_step
from llm_proxy.agent.loop import FUNCTION_NAME, client_tool_names
from llm_proxy.agent.turns import ToolCall, arguments_of
from llm_proxy.finishing import stream_opener
from llm_proxy.guard import check_body, output_scan
from llm_proxy.json_answer import json_answer
from llm_proxy.pipeline import Exchange, Pipeline
from llm_proxy.responses.agent_events import AgentResponseEvents
from llm_proxy.responses.chat import chat_output, completion_to_response, request_to_chat
from llm_proxy.responses.guard import ResponsesStreamGuard
from llm_proxy.responses.mcp import HostedSet, hosted_tools, literal_glob, qualified, split_name, without_mcp
from llm_proxy.responses.operation import Responses
from llm_proxy.responses.relay import ResponsesRelay
from llm_proxy.responses.shapes import (
    MCP_APPROVAL_PREFIX,
    MCP_CALL_PREFIX,
    MCP_LIST_PREFIX,
    mcp_approval_request_item,
    mcp_call_item,
    mcp_list_tools_item,
    new_id,
)
from llm_proxy.streaming import Opened, OpeningEventStream
from llm_proxy.upstream import dumps
from toolpolicy.errors import GatewayError, InvalidRequest
from toolpolicy.globs import GlobSet
from toolpolicy.governor import Usage
from toolpolicy.types import AgentPolicy, Principal

Save = Callable[[Principal, Responses, dict[str, Any]], Awaitable[None]]


def hosted_request(body: dict[str, Any], own: list[dict[str, Any]]) -> bool:
    """Whether the request needs agent mode whatever its key: it has `mcp` tools or answers approval requests."""
    return bool(hosted_tools(body)) or any(item.get("type") == "mcp_approval_response" for item in own)


class ResponsesAgent:
    def __init__(self, pipeline: Pipeline, loop: AgentLoop, save: Save) -> None:
        self.pipeline = pipeline
        self.loop = loop
        self.host = loop.host
        self.save = save

    async def respond(
        self,
        exchange: Exchange,
        principal: Principal,
        operation: Responses,
        own: list[dict[str, Any]],
        fallbacks: list[str],
        error: Callable[[GatewayError], Response],
    ) -> tuple[Response, bool] | None:
        """The response and whether its stream finishes the exchange, or None to serve the request as usual. A
        stream's first model call is opened as the response is made (`OpeningEventStream`); its errors are answered
        with `error`, the others raise before the response is made, for the caller to render."""
        body = operation.body
        hosted = HostedSet(hosted_tools(body))
        policy = self._policy(principal, hosted)
        history = operation.items[: len(operation.items) - len(own)]
        approvals = self._approvals(principal, hosted, history, own)
        if policy is None:
            return None
        client = client_tool_names(request_to_chat(without_mcp(body), []))
        available = [
            tool
            for tool in self.host.tools(principal, policy)
            if FUNCTION_NAME.match(tool.name) and tool.name not in client
        ]
        if not available:
            if hosted.entries or approvals:
                raise InvalidRequest("no tool of the request's mcp tools can be offered now", param="tools")
            return None
        ask_first = {tool.name for tool in available if hosted.needs_approval(tool.name)}
        approved = [await self._run_approved(exchange, principal, request, item) for request, item in approvals]
        chat = request_to_chat(without_mcp(body), _with_results(operation.items, approved))
        chat["model"] = body["model"]
        run = self.loop.begin(exchange, chat, fallbacks, policy=policy, ask_first=ask_first)
        if run is None:
            raise InvalidRequest("no tool of the request's mcp tools can be offered now", param="tools")
        run.called += [qualified(item["server_label"], item["name"]) for item in approved if item]  # in the audit
        lists = _list_items(run)
        scan = output_scan(self.pipeline, exchange)
        if not exchange.stream:
            response = await self._complete(run, operation, [*lists, *approved], ask_first)
            exchange.mark_first_byte()
            await check_body(scan, response)  # before it is stored
            await self.save(principal, operation, response)
            headers = {**exchange.headers(), STEPS_HEADER: str(run.steps), STOPPED_HEADER: str(run.stopped)}
            return json_answer(dumps(response), headers), False

        async def first() -> tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]:
            items = await first_step(run)
            events = _events(run, items, operation.skeleton, lists, approved, ask_first)
            return events, await anext(events)  # `_events` closes the run however it ends

        async def save(response: dict[str, Any]) -> None:
            await self.save(principal, operation, response)

        def relay(opened: tuple[AsyncGenerator[dict[str, Any], None], dict[str, Any]]) -> Opened:
            guard = ResponsesStreamGuard(scan) if scan is not None else None
            relayed = ResponsesRelay(
                self.pipeline, exchange, *opened, save=save, count=operation.count, settles=False, guard=guard
            )
            return Opened(relayed.frames(), exchange.headers(), relayed.close)

        open = stream_opener(self.pipeline, exchange, first, relay, error)
        return await OpeningEventStream.start(open), True

    def _policy(self, principal: Principal, hosted: HostedSet) -> AgentPolicy | None:
        """The key's agent mode widened by the request's `mcp` tools; each of those must give a tool."""
        for entry in hosted.entries:
            server = AgentPolicy(GlobSet.of([qualified(entry.server, "*")]))
            where = f"tools[{entry.index}]"
            if not self.host.tools(principal, server):
                raise InvalidRequest(
                    f"{where}.server_label: {entry.server!r} is not an MCP server of this gateway that this key may "
                    "use (or none of its tools is available now)",
                    param=f"{where}.server_label",
                )
            if entry.allowed is not None and not self.host.tools(principal, AgentPolicy(GlobSet.of(entry.globs()))):
                raise InvalidRequest(
                    f"{where}.allowed_tools: none of these tools of {entry.server!r} is available to this key",
                    param=f"{where}.allowed_tools",
                )
        key = principal.agent
        if not hosted.entries:
            return key
        patterns = (*(key.tools.patterns if key else ()), *hosted.globs().patterns)
        if key is None:
            return AgentPolicy(GlobSet(patterns))
        return AgentPolicy(GlobSet(patterns), max_steps=key.max_steps, parallel=key.parallel)

    def _approvals(
        self, principal: Principal, hosted: HostedSet, history: list[dict[str, Any]], own: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(approval request, approval response) for each `mcp_approval_response` of the input, checked."""
        requests = {item["id"]: item for item in history if item.get("type") == "mcp_approval_request"}
        answered = {
            item.get("approval_request_id")
            for item in history
            if item.get("type") in ("mcp_approval_response", "mcp_call")
        }
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for index, item in enumerate(own):
            if item.get("type") != "mcp_approval_response":
                continue
            where = f"input[{index}].approval_request_id"
            request_id = item["approval_request_id"]
            request = requests.get(request_id)
            if request is None or request_id in answered:
                raise InvalidRequest(
                    f"{where}: no pending approval request {request_id!r} in the previous response's chain",
                    param=where,
                )
            answered.add(request_id)
            name = qualified(str(request["server_label"]), str(request["name"]))
            key = principal.agent
            if hosted.server(str(request["server_label"])) is None and not (key and key.tools.matches(name)):
                raise InvalidRequest(
                    f"input[{index}]: answering an approval request of {request['server_label']!r} needs that "
                    "server's mcp tool in 'tools'",
                    param=f"input[{index}]",
                )
            found.append((request, item))
        return found

    async def _run_approved(
        self, exchange: Exchange, principal: Principal, request: dict[str, Any], response: dict[str, Any]
    ) -> dict[str, Any]:
        """The `mcp_call` item of an answered approval request: the call run, or, denied, left to the model."""
        server, tool = str(request["server_label"]), str(request["name"])
        name, arguments = qualified(server, tool), str(request["arguments"])
        if response["approve"] is not True:
            return {}
        parsed = arguments_of(ToolCall(str(request["id"]), name, arguments))
        if isinstance(parsed, ToolOutput):
            output = parsed
        else:
            only = AgentPolicy(GlobSet.of([literal_glob(name)]))
            output = await self.host.call(principal, only, name, parsed, request_id=exchange.request_id)
        return mcp_call_item(
            new_id(MCP_CALL_PREFIX),
            server,
            tool,
            arguments,
            output=None if output.is_error else output.text,
            error=output.text if output.is_error else None,
            approval_request_id=str(request["id"]),
        )

    async def _complete(
        self, run: AgentRun, operation: Responses, before: list[dict[str, Any]], ask_first: set[str]
    ) -> dict[str, Any]:
        completion = await run.complete()
        calls = [_logged_call(call) for call in run.log]
        choice = (completion.get("choices") or [{}])[0]
        final = [_approval_or_item(item, ask_first) for item in chat_output(choice.get("message") or {})]
        response = completion_to_response(completion, operation.skeleton, run.usage or Usage())
        response["output"] = [*[item for item in before if item], *calls, *final]
        return response


def _with_results(items: list[dict[str, Any]], approved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chain for the model: each approved call's `mcp_call` item right after its approval response."""
    by_request = {item["approval_request_id"]: item for item in approved if item}
    chained: list[dict[str, Any]] = []
    for item in items:
        chained.append(item)
        if item.get("type") == "mcp_approval_response" and item.get("approval_request_id") in by_request:
            chained.append(by_request[item["approval_request_id"]])
    return chained


def _list_items(run: AgentRun) -> list[dict[str, Any]]:
    """One `mcp_list_tools` item per server whose tools the run offers, in the order they are offered."""
    servers: dict[str, list[dict[str, Any]]] = {}
    for tool in run.offered:
        server, name = split_name(tool.name)
        listed = {"name": name, "input_schema": tool.parameters, "description": tool.description, "annotations": None}
        servers.setdefault(server, []).append(listed)
    return [mcp_list_tools_item(new_id(MCP_LIST_PREFIX), server, tools) for server, tools in servers.items()]


def _logged_call(call: ToolCallFinished) -> dict[str, Any]:
    server, tool = split_name(call.name)
    output = call.output
    return mcp_call_item(
        new_id(MCP_CALL_PREFIX),
        server,
        tool,
        call.arguments,
        output=None if output.is_error else output.text,
        error=output.text if output.is_error else None,
    )


def _approval_or_item(item: dict[str, Any], ask_first: set[str]) -> dict[str, Any]:
    """A function call of a tool that needs approval becomes the `mcp_approval_request` for it."""
    if item.get("type") != "function_call" or item.get("name") not in ask_first:
        return item
    server, tool = split_name(str(item["name"]))
    return mcp_approval_request_item(new_id(MCP_APPROVAL_PREFIX), server, tool, str(item.get("arguments") or ""))


def _split_calls(chunk: dict[str, Any], ask_first: set[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the chunk with the client's calls only, re-indexed; the calls that need approval)."""
    held: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        calls = delta.get("tool_calls")
        if not calls:
            choices.append(choice)
            continue
        held += [call for call in calls if (call.get("function") or {}).get("name") in ask_first]
        kept = [call for call in calls if (call.get("function") or {}).get("name") not in ask_first]
        kept = [{**call, "index": index} for index, call in enumerate(kept)]
        choices.append({**choice, "delta": {**delta, "tool_calls": kept}})
    return {**chunk, "choices": choices}, held


async def _events(
    run: AgentRun,
    items: AsyncGenerator[Any, None],
    skeleton: dict[str, Any],
    lists: list[dict[str, Any]],
    approved: list[dict[str, Any]],
    ask_first: set[str],
) -> AsyncGenerator[dict[str, Any], None]:
    """The run's stream as Responses events; closing it closes the run (releasing an open step's reservation)."""
    translate = AgentResponseEvents(skeleton)
    try:
        for event in translate.begin():
            yield event
        for listed in lists:
            for event in translate.list_tools(listed):
                yield event
        for call in approved:
            for event in translate.finished_call(call) if call else ():
                yield event
        async with aclosing(items):
            async for item in items:
                events: list[dict[str, Any]] = []
                if isinstance(item, Chunk):
                    chunk, held = _split_calls(item.data, ask_first)
                    events = translate.feed(chunk)
                    for call in held:
                        function = call.get("function") or {}
                        server, tool = split_name(str(function.get("name")))
                        request = mcp_approval_request_item(
                            new_id(MCP_APPROVAL_PREFIX), server, tool, str(function.get("arguments") or "")
                        )
                        events += translate.approval_request(request)
                elif isinstance(item, ToolCallStarted):
                    events = translate.call_started(item.call_id, item.name, item.arguments)
                elif isinstance(item, ToolCallFinished):
                    events = translate.call_finished(item.call_id, item.output)
                elif isinstance(item, RunEnded):
                    events = translate.finish(run.usage or Usage())
                for event in events:
                    yield event
    finally:
        await run.close()
