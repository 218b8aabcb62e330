"""The relay's asker on its own: which client capabilities let a request through, and what the audit keeps."""

from __future__ import annotations

from typing import Any, cast

import mcp_types as types
import pytest
from hypothesis import given, strategies as st
from mcp.server.session import ServerSession

from mcp_hub.access import Caller
from mcp_hub.relay.asks import Asker, refusal
from mcp_hub.relay.calls import AuditSink, Deadline, Downstream, UpstreamCall
from toolpolicy.audit import AuditRecord
from toolpolicy.types import Principal

pytestmark = pytest.mark.anyio

FORM = types.ElicitRequest(
    params=types.ElicitRequestFormParams(message="Name?", requested_schema={"type": "object", "properties": {}})
)
URL = types.ElicitRequest(
    params=types.ElicitRequestURLParams(message="Sign in", url="https://example.com", elicitation_id="e1")
)
SAMPLING = types.CreateMessageRequest(
    params=types.CreateMessageRequestParams(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text="hi"))],
        max_tokens=5,
    )
)


class AnsweringSession:
    """A client session that answers every request with `answer` and remembers what it was asked."""

    def __init__(self, answer: types.Result) -> None:
        self.answer = answer
        self.asked: list[types.ServerRequest] = []

    async def send_request(self, request: types.ServerRequest, result_type: Any, **kwargs: Any) -> types.Result:
        self.asked.append(request)
        return self.answer


def downstream(session: AnsweringSession, capabilities: types.ClientCapabilities) -> Downstream:
    caller = Caller(Principal(key_id="k1", key_name="bot", team="agents"), "secret")
    return Downstream(
        session=cast(ServerSession, session),
        request_id=7,
        protocol_version="2025-11-25",
        capabilities=capabilities,
        meta=None,
        connection=None,
        caller=caller,
        call_id="call-1",
    )


async def ask(
    request: Any, capabilities: types.ClientCapabilities, answer: types.Result, *, record_content: bool
) -> tuple[Any, list[AuditRecord], AnsweringSession]:
    records: list[AuditRecord] = []
    session = AnsweringSession(answer)
    call = UpstreamCall("srv", "tool", downstream(session, capabilities), Deadline(60))
    asker = Asker("srv", human_timeout=600, machine_timeout=60)
    outcome = await asker.ask(call, request, AuditSink(records.append, record_content))
    return outcome, records, session


async def test_an_answered_elicitation_is_audited_under_the_tool_call_without_its_content() -> None:
    caps = types.ClientCapabilities(elicitation=types.ElicitationCapability())
    answer = types.ElicitResult(action="accept", content={"name": "Ada"})
    outcome, [record], session = await ask(FORM, caps, answer, record_content=False)
    assert outcome == answer and session.asked == [FORM]
    assert (record.kind, record.request_id, record.target, record.decision) == (
        "elicitation",
        "call-1",
        "srv/tool",
        "allow",
    )
    assert record.key_name == "bot" and record.team == "agents"
    assert record.details == {
        "tool_call_request_id": "call-1",
        "server": "srv",
        "tool": "tool",
        "mode": "form",
        "outcome": "ok",
        "action": "accept",
    }


async def test_with_record_arguments_the_audit_keeps_the_request_and_the_answer() -> None:
    caps = types.ClientCapabilities(sampling=types.SamplingCapability())
    reply = types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="yo"), model="m")
    _, [record], _ = await ask(SAMPLING, caps, reply, record_content=True)
    assert record.kind == "sampling"
    assert record.details["request"]["messages"] == [{"role": "user", "content": {"type": "text", "text": "hi"}}]
    assert record.details["response"]["content"] == {"type": "text", "text": "yo"}


async def test_a_refused_request_never_reaches_the_client_and_is_audited_as_denied() -> None:
    caps = types.ClientCapabilities(elicitation=types.ElicitationCapability(form=types.FormElicitationCapability()))
    outcome, [record], session = await ask(URL, caps, types.ElicitResult(action="accept"), record_content=True)
    assert isinstance(outcome, types.ErrorData) and outcome.code == types.INVALID_PARAMS
    assert session.asked == []
    assert (record.decision, record.status, record.reason) == ("deny", 400, "capability_not_declared")
    assert "response" not in record.details


async def test_roots_are_relayed_but_not_audited() -> None:
    caps = types.ClientCapabilities(roots=types.RootsCapability())
    roots = types.ListRootsResult(roots=[types.Root(uri="file:///srv")])
    outcome, records, _ = await ask(types.ListRootsRequest(), caps, roots, record_content=True)
    assert outcome == roots and records == []


@given(
    sampling=st.booleans(),
    sampling_tools=st.booleans(),
    elicitation=st.sampled_from([None, "empty", "form", "url", "both"]),
    roots=st.booleans(),
    request=st.sampled_from(["sampling", "sampling_tools", "form", "url", "roots"]),
)
def test_a_request_passes_exactly_when_the_client_declared_what_it_needs(
    sampling: bool, sampling_tools: bool, elicitation: str | None, roots: bool, request: str
) -> None:
    form, url = types.FormElicitationCapability(), types.UrlElicitationCapability()
    elicit_caps = {
        None: None,
        "empty": types.ElicitationCapability(),
        "form": types.ElicitationCapability(form=form),
        "url": types.ElicitationCapability(url=url),
        "both": types.ElicitationCapability(form=form, url=url),
    }[elicitation]
    tools = types.SamplingToolsCapability() if sampling_tools else None
    caps = types.ClientCapabilities(
        sampling=types.SamplingCapability(tools=tools) if sampling else None,
        elicitation=elicit_caps,
        roots=types.RootsCapability() if roots else None,
    )
    tool = types.Tool(name="t", input_schema={"type": "object"})
    asked: Any = {
        "sampling": SAMPLING,
        "sampling_tools": SAMPLING.model_copy(update={"params": SAMPLING.params.model_copy(update={"tools": [tool]})}),
        "form": FORM,
        "url": URL,
        "roots": types.ListRootsRequest(),
    }[request]
    allowed = {
        "sampling": sampling,
        "sampling_tools": sampling and sampling_tools,
        "form": elicitation in ("empty", "form", "both"),
        "url": elicitation in ("url", "both"),
        "roots": roots,
    }[request]
    refused = refusal(asked, caps)
    assert (refused is None) == allowed
    if refused is not None:
        missing_method = request in ("roots", "sampling") or (request == "sampling_tools" and not sampling)
        assert refused.code == (types.METHOD_NOT_FOUND if missing_method else types.INVALID_PARAMS)
