"""The same agent loop on the official `anthropic` SDK, pointed at Isthmus: only `base_url` (and the key) change.

    make run                                   # the quickstart gateway on 127.0.0.1:8080
    python examples/agents/anthropic_agent.py "What time is it?"
    python examples/agents/anthropic_agent.py --require-tool "What time is it in UTC?"

`/v1/messages` routes to any provider: with the quickstart config the `echo/echo-1` model answers (no key needed).
Set ANTHROPIC_API_KEY before `make run` and use `--model anthropic/claude-haiku-4-5` for a real model.
ISTHMUS_URL and ISTHMUS_KEY override the quickstart's defaults.
"""

from __future__ import annotations

import argparse
import datetime
import os
from typing import Any

from anthropic import Anthropic

TOOLS: list[Any] = [
    {
        "name": "current_time",
        "description": "The current date and time, in ISO 8601.",
        "input_schema": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "Only 'UTC' is supported."}},
        },
    }
]


def current_time(timezone: str = "UTC") -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run(question: str, *, model: str, require_tool: bool, max_turns: int = 5) -> str:
    client = Anthropic(
        base_url=os.environ.get("ISTHMUS_URL", "http://127.0.0.1:8080"),  # the only change
        api_key=os.environ.get("ISTHMUS_KEY", "isk-quickstart-demo-key"),  # an Isthmus virtual key
    )
    messages: list[Any] = [{"role": "user", "content": question}]
    for turn in range(max_turns):
        raw = client.messages.with_raw_response.create(
            model=model,
            max_tokens=1024,
            messages=messages,
            tools=TOOLS,
            tool_choice={"type": "any"} if require_tool and turn == 0 else {"type": "auto"},
        )
        print(f"[turn {turn + 1}: answered by {raw.headers.get('x-isthmus-route')}]")
        reply = raw.parse()
        messages.append({"role": "assistant", "content": [block.model_dump() for block in reply.content]})
        uses = [block for block in reply.content if block.type == "tool_use"]
        if not uses:
            return "".join(block.text for block in reply.content if block.type == "text")
        results = []
        for use in uses:
            result = current_time(**use.input)  # type: ignore[arg-type]
            print(f"[tool {use.name}({use.input}) -> {result}]")
            results.append({"type": "tool_result", "tool_use_id": use.id, "content": result})
        messages.append({"role": "user", "content": results})
    return "(no answer within the turn limit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="What time is it?")
    parser.add_argument("--model", default="echo/echo-1", help="provider/model or an alias (default: echo/echo-1)")
    parser.add_argument("--require-tool", action="store_true", help="make the first turn call the tool")
    args = parser.parse_args()
    print(run(args.question, model=args.model, require_tool=args.require_tool))


if __name__ == "__main__":
    main()
