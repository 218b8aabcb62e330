"""An agent loop on the official `openai` SDK, pointed at Isthmus: only `base_url` (and the key) change.

    make run                                   # the quickstart gateway on 127.0.0.1:8080
    python examples/agents/openai_agent.py "What time is it?"
    python examples/agents/openai_agent.py --model fast --require-tool "What time is it in UTC?"

With the quickstart config the `echo/echo-1` model answers by echoing (no provider key needed); `--require-tool`
makes the first turn call a tool, so the whole loop runs. Set OPENAI_API_KEY before `make run` and use
`--model openai/gpt-4o-mini` for a real model. ISTHMUS_URL and ISTHMUS_KEY override the quickstart's defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from typing import Any

from openai import OpenAI

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "current_time",
            "description": "The current date and time, in ISO 8601.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "Only 'UTC' is supported."}},
            },
        },
    }
]


def current_time(timezone: str = "UTC") -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run(question: str, *, model: str, require_tool: bool, max_turns: int = 5) -> str:
    client = OpenAI(
        base_url=os.environ.get("ISTHMUS_URL", "http://127.0.0.1:8080") + "/v1",  # the only change
        api_key=os.environ.get("ISTHMUS_KEY", "isk-quickstart-demo-key"),  # an Isthmus virtual key
    )
    messages: list[Any] = [{"role": "user", "content": question}]
    for turn in range(max_turns):
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            messages=messages,
            tools=TOOLS,
            tool_choice="required" if require_tool and turn == 0 else "auto",
        )
        print(f"[turn {turn + 1}: answered by {raw.headers.get('x-isthmus-route')}]")
        message = raw.parse().choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            arguments = json.loads(call.function.arguments or "{}")  # type: ignore[union-attr]
            result = current_time(**arguments)
            print(f"[tool {call.function.name}({arguments}) -> {result}]")  # type: ignore[union-attr]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
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
