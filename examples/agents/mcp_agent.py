"""An agent that takes its tools from the gateway's `/mcp` (with the `mcp` SDK) and its model from the LLM proxy.

Both go through the same virtual key, so the key's tool allowlist decides what the model may call, and every model
request and tool call is governed and audited by the gateway.

    python examples/agents/mcp_agent.py "What time is it in Tokyo? Then add 2 and 40." --model openai/gpt-4o-mini
    python examples/agents/mcp_agent.py --list-tools      # the tools the key gets, in OpenAI function format

Environment: ISTHMUS_URL (default http://127.0.0.1:8080) and ISTHMUS_API_KEY (default: the quickstart key).
Needs the `openai` package for the model side (`pip install openai`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

SYSTEM = "You are a helpful assistant. Use the tools when they help; tool names are <server>__<tool>."


def openai_tools(tools: list[types.Tool]) -> list[dict[str, Any]]:
    """MCP tools as OpenAI function tools (their names are already valid function names)."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description or t.title or "", "parameters": t.input_schema},
        }
        for t in tools
    ]


def result_text(result: types.CallToolResult) -> str:
    """What the model reads back: the structured result when there is one, else the text parts."""
    if result.structured_content is not None:
        body = json.dumps(result.structured_content)
    else:
        body = "\n".join(part.text for part in result.content if isinstance(part, types.TextContent))
    return f"ERROR: {body}" if result.is_error else body


async def list_all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            return tools


async def call_tool(client: Client, name: str, arguments: str) -> str:
    try:
        result = await client.call_tool(name, json.loads(arguments or "{}"))
    except json.JSONDecodeError as exc:
        return f"ERROR: the arguments are not valid JSON ({exc.msg})"
    except MCPError as exc:
        return f"ERROR: {exc.message}"
    return result_text(result)


async def run(question: str | None, *, model: str, url: str, key: str, max_turns: int) -> str:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30, read=300))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http), cache=None) as mcp:
        tools = await list_all_tools(mcp)
        if question is None:
            return json.dumps(openai_tools(tools), indent=2)

        from openai import AsyncOpenAI  # only the agent loop needs it

        llm = AsyncOpenAI(base_url=f"{url}/v1", api_key=key)
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        for _ in range(max_turns):
            reply = await llm.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                tools=openai_tools(tools),  # type: ignore[arg-type]
            )
            message = reply.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                return message.content or ""
            for tool_call in message.tool_calls:
                function = getattr(tool_call, "function", None)
                if function is None:
                    continue
                print(f"-> {function.name}({function.arguments})", file=sys.stderr)
                content = await call_tool(mcp, function.name, function.arguments)
                messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": content})
        return f"(stopped after {max_turns} turns)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("question", nargs="?", help="what to ask the agent")
    parser.add_argument("--list-tools", action="store_true", help="print the key's tools and exit")
    parser.add_argument("--model", default="openai/gpt-4o-mini", help="a model the key may use, as provider/model")
    parser.add_argument("--max-turns", type=int, default=8)
    args = parser.parse_args()
    if args.question is None and not args.list_tools:
        parser.error("ask a question, or pass --list-tools")
    url = os.environ.get("ISTHMUS_URL", "http://127.0.0.1:8080").rstrip("/")
    key = os.environ.get("ISTHMUS_API_KEY", "isk-quickstart-demo-key")
    question = None if args.list_tools else args.question
    print(asyncio.run(run(question, model=args.model, url=url, key=key, max_turns=args.max_turns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
