"""Code Mode benchmark: tokens a model is sent with direct tool lists versus Code Mode's three meta-tools.

Deterministic and offline: synthetic catalogs (a fixed seed), token counts with the vendored o200k_base encoding,
and a scripted model making the same decisions both ways. Nothing here is timed.

1. Definitions: the tool list a client must send with every model request, as OpenAI function tools JSON, for
   catalogs of 50, 100, 250 and 500 tools over ten servers, against the meta-tools (which name the modules).
2. A scripted task: "for account ACME-42, find the open high and urgent tickets, read each one, and report SLA
   breaches with the account owner". Direct: the model calls the search tool, then every ticket and the account
   in parallel, and reads all of it; each request resends the whole tool list. Code Mode: the model searches,
   reads three stubs and sends one program; the real engine runs it in the sandbox against the same data, and
   only the program's small result comes back. Every request's input and every reply's output are counted.

Run: `.venv/bin/python bench/code_mode.py`; the table is printed and written to bench/results/code_mode.md.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

import mcp_types as types

from llm_proxy.tokens import chat_texts, count_text, encoding
from mcp_hub.codemode import CodeMode, ToolSpec
from toolpolicy.settings import CodeModeSettings

SEED = 20260728
SIZES = (50, 100, 250, 500)
ACCOUNT = "ACME-42"
RESULTS = Path(__file__).parent / "results" / "code_mode.md"
SYSTEM = "You are a support operations assistant. Use the tools to answer precisely."
USER = (
    f"For account {ACCOUNT}, find the open tickets with high or urgent priority, read each one, and tell me how "
    "many breached their SLA, the total hours over SLA, the three worst tickets, and who owns the account."
)
# The three tools the task needs, as the scripted model picks them in either mode.
NEEDED = ("tickets.search_tickets", "tickets.get_ticket", "crm.get_account")

SERVERS = {
    "tickets": "ticket comment queue macro sla_policy tag attachment view trigger satisfaction_rating",
    "crm": "account contact deal lead note pipeline activity opportunity segment territory",
    "billing": "invoice subscription payment refund coupon plan credit_note tax_rate usage_record payout",
    "github": "repository issue pull_request branch commit release workflow_run review label milestone",
    "calendar": "event calendar attendee room availability reminder recurrence booking_page holiday resource",
    "storage": "file folder share_link permission version bucket upload_session quota trash_item retention_rule",
    "analytics": "report dashboard metric funnel cohort event_definition saved_query export alert annotation",
    "messaging": "channel message thread user_group reaction pin bookmark scheduled_message webhook emoji",
    "hr": "employee time_off_request position review_cycle benefit_plan payroll_run onboarding_task department "
    "skill policy_document",
    "monitoring": "alert_rule incident service dashboard_panel log_query trace uptime_check on_call_schedule "
    "maintenance_window slo",
}
VERBS = ("list", "get", "create", "update", "delete")
STATUSES = ["open", "pending", "on_hold", "solved", "closed"]
PRIORITIES = ["low", "normal", "high", "urgent"]


def _words(noun: str) -> str:
    return noun.replace("_", " ")


def _extra_properties(rng: random.Random, noun: str) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "tags": {"type": "array", "items": {"type": "string"}, "description": f"Tags to attach to the {_words(noun)}."},
        "visibility": {"type": "string", "enum": ["private", "team", "organization", "public"],
                       "description": "Who can see it."},
        "notify": {"type": "boolean", "default": False, "description": "Send notifications to watchers."},
        "due_at": {"type": "string", "format": "date-time", "description": "When it is due (ISO 8601)."},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"},
                     "description": "Free-form key/value pairs stored with it."},
        "owner": {"type": "object", "description": "Who owns it.", "properties": {
            "user_id": {"type": "string", "description": "The owner's user ID."},
            "team_id": {"type": "string", "description": "The owning team's ID."}}, "required": ["user_id"]},
        "attachments": {"type": "array", "description": "Files to attach.", "items": {"type": "object", "properties": {
            "file_id": {"type": "string"}, "name": {"type": "string"},
            "content_type": {"type": "string", "description": "MIME type, e.g. application/pdf."}},
            "required": ["file_id"]}},
        "locale": {"type": "string", "default": "en-US", "description": "Language of generated text (BCP 47)."},
        "priority": {"type": "string", "enum": PRIORITIES, "description": "How urgent it is."},
        "external_ref": {"type": ["string", "null"], "description": "ID of the matching record in another system."},
    }  # fmt: skip
    return {key: pool[key] for key in rng.sample(sorted(pool), rng.randint(1, 4))}


def _generated(server: str, noun: str, verb: str, rng: random.Random) -> ToolSpec:
    words, key = _words(noun), f"{noun}_id"
    ident = {key: {"type": "string", "description": f"ID of the {words}."}}
    sentences = {
        "list": f"List {words}s in the {server} workspace, newest first. Results are paginated; pass the returned "
        "cursor to get the next page.",
        "get": f"Get one {words} by ID, with its full details.",
        "create": f"Create a {words}. Fails if one with the same name already exists.",
        "update": f"Update fields of a {words}. Only the fields given change; the others keep their values.",
        "delete": f"Delete a {words}. Deleted items go to the trash for 30 days unless `permanent` is set.",
    }
    required: list[str] = []
    if verb == "list":
        properties: dict[str, Any] = {
            "query": {"type": "string", "description": "Full-text search over names and descriptions."},
            "status": {"type": "string", "enum": ["active", "archived", "all"], "default": "active"},
            "sort": {"type": "string", "enum": ["created_at", "updated_at", "name"], "default": "created_at"},
            "order": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25, "description": "Page size."},
            "cursor": {"type": "string", "description": "Cursor from a previous page."},
        }
    elif verb == "get":
        include = {"type": "array", "items": {"type": "string", "enum": ["history", "permissions", "related"]}}
        properties, required = {**ident, "include": {**include, "description": "Related data to embed."}}, [key]
    elif verb == "create":
        properties = {"name": {"type": "string", "description": f"Name of the new {words}."},
                      "description": {"type": "string", "description": "Longer text, Markdown allowed."}}  # fmt: skip
        properties.update(_extra_properties(rng, noun))
        required = ["name"]
    elif verb == "update":
        changes = {"type": "object", "description": "Fields to change.", "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}, **_extra_properties(rng, noun)}}  # fmt: skip
        properties, required = {**ident, "changes": changes}, [key, "changes"]
    else:
        properties = {**ident, "permanent": {"type": "boolean", "default": False, "description": "Skip the trash."},
                      "reason": {"type": "string", "description": "Why, for the audit log."}}  # fmt: skip
        required = [key]
    schema = {"type": "object", "properties": properties, "required": required}
    output = None
    if verb == "get" and rng.random() < 0.5:
        output = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                  "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}  # fmt: skip
    annotations = {"readOnlyHint": True} if verb in ("list", "get") else {"destructiveHint": verb == "delete"}
    return ToolSpec(server, f"{verb}_{noun}", sentences[verb], schema, output, annotations)


CORE = [
    ToolSpec("tickets", "search_tickets", "Search support tickets by account, status, priority and text. Returns "
             "summaries only; use get_ticket for the full conversation and SLA data.", {
        "type": "object", "required": ["account_id"], "properties": {
            "account_id": {"type": "string", "description": "CRM account ID, e.g. ACME-42."},
            "status": {"type": "string", "enum": STATUSES, "description": "Only tickets in this status."},
            "priority": {"type": "array", "items": {"type": "string", "enum": PRIORITIES},
                         "description": "Only tickets with one of these priorities."},
            "text": {"type": "string", "description": "Words to match in subject and body."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}}},
        None, {"readOnlyHint": True}),
    ToolSpec("tickets", "get_ticket", "Get one ticket with its description, comments, custom fields and SLA "
             "status.", {"type": "object", "required": ["ticket_id"], "properties": {
                 "ticket_id": {"type": "string", "description": "Ticket ID, e.g. T-1042."}}},
             None, {"readOnlyHint": True}),
    ToolSpec("crm", "get_account", "Get a customer account: plan, owner, contacts and health score.", {
        "type": "object", "required": ["account_id"], "properties": {
            "account_id": {"type": "string", "description": "Account ID."}}}, None, {"readOnlyHint": True}),
]  # fmt: skip


def catalog(size: int) -> list[ToolSpec]:
    """`size` tools over the ten servers, interleaved so every size covers them all; the task's tools first."""
    rng = random.Random(SEED)
    per_server = {
        server: [_generated(server, noun, verb, rng) for noun in nouns.split() for verb in VERBS]
        for server, nouns in SERVERS.items()
    }
    core = {(spec.server, spec.name) for spec in CORE}
    interleaved = [tools[i] for i in range(50) for tools in per_server.values()]
    rest = [spec for spec in interleaved if (spec.server, spec.name) not in core]
    return CORE + rest[: size - len(CORE)]


def dataset() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, Any]]:
    """The account's open high/urgent ticket summaries, every ticket's details, and the account."""
    rng = random.Random(SEED + 1)
    summaries, details = [], {}
    for n in range(25):
        ticket_id = f"T-{1000 + n * 7}"
        priority = rng.choice(["high", "urgent"])
        target = 8 if priority == "urgent" else 24
        elapsed = round(rng.uniform(2, 60), 1)
        subject = rng.choice(["Login fails after SSO change", "Invoices show wrong VAT", "Export stuck at 90%",
                              "Webhook retries flood endpoint", "Dashboard slow for large teams"])  # fmt: skip
        updated = f"2026-07-{1 + n:02d}T09:00:00Z"
        summaries.append({"id": ticket_id, "subject": subject, "priority": priority, "status": "open",
                          "assignee": f"agent{n % 6}@support.example", "updated_at": updated})  # fmt: skip
        comments = [
            {"author": rng.choice(["customer", "agent", "engineer"]), "at": f"2026-07-{1 + n:02d}T{10 + i:02d}:15:00Z",
             "body": " ".join(rng.choice(["We", "The", "Our", "This", "It"]) + " " + rng.choice(
                 ["still see the error", "retried the job", "checked the logs", "escalated to tier 2",
                  "cannot reproduce", "applied the workaround"]) + "." for _ in range(rng.randint(3, 6)))}
            for i in range(rng.randint(2, 5))
        ]  # fmt: skip
        details[ticket_id] = {
            "id": ticket_id, "subject": subject, "priority": priority, "status": "open",
            "description": f"{subject}. " + " ".join(
                rng.choice(["Users report intermittent failures.", "Started after the last deploy.",
                            "Affects the EU region only.", "A restart helps for an hour.",
                            "Customer is on the enterprise plan.", "Logs attached in the first comment."])
                for _ in range(6)),
            "comments": comments,
            "custom_fields": {"region": rng.choice(["eu-west", "us-east", "ap-south"]), "product": "platform",
                              "severity": rng.randint(1, 4)},
            "sla": {"target_hours": target, "elapsed_hours": elapsed, "breached": elapsed > target},
            "tags": rng.sample(["sso", "billing", "export", "webhooks", "performance", "vip"], 2),
        }  # fmt: skip
    account = {
        "id": ACCOUNT, "name": "Acme Corporation", "plan": "enterprise", "health_score": 61,
        "owner": {"name": "Dana Whitfield", "email": "dana.whitfield@vendor.example"},
        "contacts": [{"name": f"Contact {i}", "email": f"c{i}@acme.example", "role": "admin"} for i in range(4)],
    }  # fmt: skip
    return summaries, details, account


def answer_tool(server: str, tool: str, arguments: dict[str, Any], data: Any) -> Any:
    """The tools of the task, answering from the dataset (the same answers in both modes)."""
    summaries, details, account = data
    if (server, tool) == ("tickets", "search_tickets"):
        assert arguments["account_id"] == ACCOUNT
        return {"tickets": [t for t in summaries if t["priority"] in arguments.get("priority", PRIORITIES)]}
    if (server, tool) == ("tickets", "get_ticket"):
        return details[arguments["ticket_id"]]
    if (server, tool) == ("crm", "get_account"):
        return account
    raise AssertionError(f"the scripted task does not use {server}.{tool}")


def summarise(tickets: list[dict[str, Any]], account: dict[str, Any]) -> dict[str, Any]:
    """What the scripted model works out in direct mode; the Code Mode program below computes the same."""
    breached = [t for t in tickets if t["sla"]["breached"]]
    over = sorted(breached, key=lambda t: t["sla"]["elapsed_hours"] - t["sla"]["target_hours"], reverse=True)
    return {
        "open_high_priority": len(tickets),
        "breached": len(breached),
        "hours_over_sla": round(sum(t["sla"]["elapsed_hours"] - t["sla"]["target_hours"] for t in breached), 1),
        "worst": [t["id"] for t in over[:3]],
        "owner": account["owner"]["name"],
    }


PROGRAM = f"""import asyncio
found = await tickets.search_tickets(account_id="{ACCOUNT}", status="open", priority=["high", "urgent"], limit=50)
details = await asyncio.gather(*[tickets.get_ticket(ticket_id=t["id"]) for t in found["tickets"]])
account = await crm.get_account(account_id="{ACCOUNT}")
breached = [t for t in details if t["sla"]["breached"]]
over = sorted(breached, key=lambda t: t["sla"]["elapsed_hours"] - t["sla"]["target_hours"], reverse=True)
{{
    "open_high_priority": len(details),
    "breached": len(breached),
    "hours_over_sla": round(sum(t["sla"]["elapsed_hours"] - t["sla"]["target_hours"] for t in breached), 1),
    "worst": [t["id"] for t in over[:3]],
    "owner": account["owner"]["name"],
}}"""


def final_answer(summary: dict[str, Any]) -> str:
    return (
        f"{summary['open_high_priority']} open high/urgent tickets; {summary['breached']} breached their SLA, "
        f"{summary['hours_over_sla']} hours over in total. Worst: {', '.join(summary['worst'])}. "
        f"Account owner: {summary['owner']}."
    )


def openai_tool(name: str, description: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description or "", "parameters": parameters}}


def assistant_calls(calls: list[tuple[str, dict[str, Any]]], first: int) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": f"call_{first + i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(calls)
        ],
    }


class Conversation:
    """A chat as a client drives it: each request sends the tool list and every message so far."""

    def __init__(self, tools: list[dict[str, Any]]) -> None:
        self.enc = encoding("o200k_base")
        self.tool_tokens = len(self.enc.encode_ordinary(json.dumps(tools)))
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
        self.input = self.output = self.requests = 0
        self.calls = 0

    def request(self, reply: dict[str, Any]) -> dict[str, Any]:
        """One model request (OpenAI's per-message overheads included) and the model's reply to it."""
        sent = count_text(self.enc, chat_texts(self.messages)) + 3 * len(self.messages) + 3
        self.input += self.tool_tokens + sent
        self.output += count_text(self.enc, chat_texts([reply]))
        self.requests += 1
        self.messages.append(reply)
        return reply

    def call(self, calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
        reply = self.request(assistant_calls(calls, self.calls + 1))
        self.calls += len(calls)
        return [call["id"] for call in reply["tool_calls"]]

    def tool_result(self, call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    @property
    def total(self) -> int:
        return self.input + self.output


def run_direct(specs: list[ToolSpec], data: Any) -> tuple[Conversation, str]:
    chat = Conversation([openai_tool(f"{s.server}__{s.name}", s.description, s.input_schema) for s in specs])
    search = {"account_id": ACCOUNT, "status": "open", "priority": ["high", "urgent"], "limit": 50}
    (call_id,) = chat.call([("tickets__search_tickets", search)])
    chat.tool_result(call_id, json.dumps(answer_tool("tickets", "search_tickets", search, data)))
    # The model reads the summaries it was sent, then fetches every ticket and the account at once.
    found = json.loads(chat.messages[-1]["content"])["tickets"]
    calls = [("tickets__get_ticket", {"ticket_id": t["id"]}) for t in found]
    ids = chat.call([*calls, ("crm__get_account", {"account_id": ACCOUNT})])
    for call_id, (name, args) in zip(ids, [*calls, ("crm__get_account", {"account_id": ACCOUNT})], strict=True):
        server, _, tool = name.partition("__")
        chat.tool_result(call_id, json.dumps(answer_tool(server, tool, args, data)))
    results = [json.loads(message["content"]) for message in chat.messages[-len(ids) :]]
    answer = final_answer(summarise(results[:-1], results[-1]))
    chat.request({"role": "assistant", "content": answer})
    return chat, answer


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    if result.is_error:
        raise SystemExit(f"Code Mode answered with an error:\n{block.text}")
    return block.text


async def run_code_mode(specs: list[ToolSpec], data: Any) -> tuple[Conversation, str, list[int]]:
    async def caller(server: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        text = json.dumps(answer_tool(server, tool, arguments, data))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    engine = CodeMode(CodeModeSettings())
    try:
        meta = engine.meta_tools(specs)
        chat = Conversation([openai_tool(tool.name, tool.description, tool.input_schema) for tool in meta])
        # One search per thing the task needs, at once; five results each are plenty to choose from.
        queries = ["search tickets by account and priority", "ticket details with comments and SLA", "account owner"]
        searches = [("search_tools", {"query": query, "limit": 5}) for query in queries]
        found: list[str] = []
        for call_id, (_, arguments) in zip(chat.call(searches), searches, strict=True):
            text = _text(await engine.call("search_tools", arguments, specs, caller, "bench"))
            chat.tool_result(call_id, text)
            found += [line.partition("(")[0] for line in text.splitlines()[1:] if not line.startswith(" ")]
        missing = [name for name in NEEDED if name not in found]
        if missing:
            raise SystemExit(f"search_tools did not surface {missing} among {len(specs)} tools")
        ranks = [found.index(name) % 5 + 1 for name in NEEDED]
        (call_id,) = chat.call([("get_tool_docs", {"names": list(NEEDED)})])
        docs = _text(await engine.call("get_tool_docs", {"names": list(NEEDED)}, specs, caller, "bench"))
        for stub in ("async def search_tickets(account_id: str", "async def get_ticket(ticket_id: str)",
                     "async def get_account(account_id: str)"):  # fmt: skip
            assert stub in docs, f"the program relies on {stub!r}, which the docs do not show"
        chat.tool_result(call_id, docs)
        (call_id,) = chat.call([("run_code", {"code": PROGRAM})])
        output = _text(await engine.call("run_code", {"code": PROGRAM}, specs, caller, "bench"))
        chat.tool_result(call_id, output)
        answer = final_answer(json.loads(output.removeprefix("Result:\n")))
        chat.request({"role": "assistant", "content": answer})
        return chat, answer, ranks
    finally:
        await engine.stop()


def percent_fewer(direct: int, code_mode: int) -> float:
    return 100 * (1 - code_mode / direct)


async def main() -> int:
    data = dataset()
    rows, checks, answers = [], [], set()
    for size in SIZES:
        specs = catalog(size)
        direct, direct_answer = run_direct(specs, data)
        code_mode, code_answer, ranks = await run_code_mode(specs, data)
        answers |= {direct_answer, code_answer}
        definitions = percent_fewer(direct.tool_tokens, code_mode.tool_tokens)
        task = percent_fewer(direct.total, code_mode.total)
        same = "yes" if direct_answer == code_answer else "**no**"
        rows.append(
            f"| {size} | {direct.tool_tokens:,} | {code_mode.tool_tokens:,} | {definitions:.1f}% "
            f"| {direct.total:,} ({direct.requests}) | {code_mode.total:,} ({code_mode.requests}) | {task:.1f}% "
            f"| {same} | {', '.join(map(str, ranks))} |"
        )
        checks.append((size, definitions, task, direct_answer == code_answer))
    lines = [
        "| Tools | Direct tool list | Meta-tools | Fewer | Direct task (requests) | Code Mode task (requests) | Fewer "
        "| Same answer | Search rank of the 3 tools |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: |",
        *rows,
    ]
    by_size = {size: (definitions, task, same) for size, definitions, task, same in checks}
    targets = [
        (f"definition tokens at 100 tools: {by_size[100][0]:.1f}% fewer (target 90%)", by_size[100][0] >= 90),
        (f"definition tokens at 500 tools: {by_size[500][0]:.1f}% fewer (target 97%)", by_size[500][0] >= 97),
        (
            f"scripted task: at least {min(t for _, t, _ in by_size.values()):.1f}% fewer tokens (target 60%)",
            all(t >= 60 for _, t, _ in by_size.values()),
        ),
        (
            "same final answer both ways at every size",
            all(same for _, _, same in by_size.values()) and len(answers) == 1,
        ),
    ]
    summary = [f"- {'met' if ok else 'MISSED'}: {text}" for text, ok in targets]
    report = "\n".join(
        [
            "# Code Mode benchmark",
            "",
            "Tokens counted with o200k_base. *Direct tool list*: every tool as OpenAI function JSON; *Meta-tools*: "
            "`search_tools`, `get_tool_docs`, `run_code`. *Task*: input of every request (tool list + messages so "
            "far) plus every reply, for the scripted task in `bench/code_mode.py`.",
            "",
            *lines,
            "",
            *summary,
            "",
            f"Final answer (both ways): {next(iter(answers)) if len(answers) == 1 else sorted(answers)}",
            "",
        ]
    )
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    return 0 if all(ok for _, ok in targets) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
