"""The suite's 2026-07-28 `input-required-result-*` fixtures (SEP-2322): tools and a prompt that answer with an
`InputRequiredResult` first and finish when the client retries with `inputResponses` (and the echoed state).

The SDK seals `request_state` (RequestStateSecurity on the server), so the handlers see plain text and a tampered
echo is refused before they run.
"""

from __future__ import annotations

import json

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.types import (
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequest,
    InputRequiredResult,
    ListRootsRequest,
    ListRootsResult,
    SamplingMessage,
    TextContent,
)


def _form(message: str, field: str, kind: str = "string") -> ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))


def _sample(prompt: str, max_tokens: int) -> CreateMessageRequest:
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return CreateMessageRequest(params=CreateMessageRequestParams(messages=[message], max_tokens=max_tokens))


def _answer(result: object, field: str) -> object:
    """A field of an accepted elicitation's content, or None."""
    return result.content.get(field) if isinstance(result, ElicitResult) and result.content else None


def register_input_required_tools(mcp: MCPServer) -> None:
    @mcp.tool()
    async def test_input_required_result_elicitation(ctx: Context) -> str | InputRequiredResult:
        """Tests InputRequiredResult with a single elicitation request"""
        responses = ctx.input_responses or {}
        if "user_name" in responses:
            return f"Hello, {_answer(responses['user_name'], 'name') or 'stranger'}!"
        return InputRequiredResult(input_requests={"user_name": _form("What is your name?", "name")})

    @mcp.tool()
    async def test_input_required_result_sampling(ctx: Context) -> str | InputRequiredResult:
        """Tests InputRequiredResult with a single sampling request"""
        responses = ctx.input_responses or {}
        if "capital_question" in responses:
            answer = responses["capital_question"]
            said = answer.content if isinstance(answer, CreateMessageResult) else None
            return f"Model said: {said.text if isinstance(said, TextContent) else '?'}"
        question = _sample("What is the capital of France?", 100)
        return InputRequiredResult(input_requests={"capital_question": question})

    @mcp.tool()
    async def test_input_required_result_list_roots(ctx: Context) -> str | InputRequiredResult:
        """Tests InputRequiredResult with a single roots/list request"""
        responses = ctx.input_responses or {}
        if "client_roots" in responses:
            answer = responses["client_roots"]
            return f"Client exposed {len(answer.roots) if isinstance(answer, ListRootsResult) else 0} root(s)."
        return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})

    @mcp.tool()
    async def test_input_required_result_request_state(ctx: Context) -> str | InputRequiredResult:
        """Tests requestState round-tripping in the InputRequiredResult flow"""
        if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "request-state-nonce":
            return "state-ok: confirmation received"
        confirm = _form("Please confirm", "ok", "boolean")
        return InputRequiredResult(input_requests={"confirm": confirm}, request_state="request-state-nonce")

    @mcp.tool()
    async def test_input_required_result_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
        """Tests InputRequiredResult carrying elicitation, sampling and roots requests together"""
        if {"user_name", "greeting", "client_roots"} <= (ctx.input_responses or {}).keys():
            return "All inputs received."
        requests: dict[str, InputRequest] = {
            "user_name": _form("What is your name?", "name"),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": ListRootsRequest(),
        }
        return InputRequiredResult(input_requests=requests, request_state="multiple-inputs")

    @mcp.tool()
    async def test_input_required_result_multi_round(ctx: Context) -> str | InputRequiredResult:
        """Tests a three-round InputRequiredResult flow with evolving requestState"""
        state = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
        responses = ctx.input_responses or {}
        if state["round"] == 1 and "step1" in responses:
            step2 = _form("Step 2: What is your favorite color?", "color")
            name = _answer(responses["step1"], "name")
            return InputRequiredResult(
                input_requests={"step2": step2}, request_state=json.dumps({"round": 2, "name": name})
            )
        if state["round"] == 2 and "step2" in responses:
            return f"{state.get('name')} likes {_answer(responses['step2'], 'color')}."
        # A first call, or a missing or out-of-order answer: start over.
        step1 = _form("Step 1: What is your name?", "name")
        return InputRequiredResult(input_requests={"step1": step1}, request_state=json.dumps({"round": 1}))

    @mcp.tool()
    async def test_input_required_result_tampered_state(ctx: Context) -> str | InputRequiredResult:
        """Tests that the server rejects a tampered requestState echo (the SDK's state boundary does)"""
        if ctx.request_state is None:
            confirm = _form("Please confirm", "ok", "boolean")
            return InputRequiredResult(input_requests={"confirm": confirm}, request_state="round-1")
        return f"state-ok: {ctx.request_state}"

    @mcp.tool()
    async def test_input_required_result_capabilities(ctx: Context) -> InputRequiredResult:
        """Tests that inputRequests only include methods the client declared support for"""
        caps = ctx.client_capabilities
        requests: dict[str, InputRequest] = {}
        if caps is None or caps.sampling is not None:
            requests["sample"] = _sample("Say hello", 50)
        if caps is None or caps.elicitation is not None:
            requests["ask"] = _form("What is your name?", "name")
        return InputRequiredResult(input_requests=requests, request_state="capability-gated")

    @mcp.prompt()
    async def test_input_required_result_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
        """Tests InputRequiredResult from prompts/get (SEP-2322 non-tool request)"""
        responses = ctx.input_responses or {}
        if "user_context" in responses:
            context = _answer(responses["user_context"], "context") or "?"
            text = TextContent(type="text", text=f"Use the following context: {context}")
            return [UserMessage(role="user", content=text)]
        question = _form("What context should the prompt use?", "context")
        return InputRequiredResult(input_requests={"user_context": question})
