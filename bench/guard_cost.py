"""The guardrail engine's own cost, in process: CPU time per operation with the `isthmus+guard` rules.

    python -m bench.guard_cost [--repeat 5]

What it times, each the best of `--repeat` runs of CPU time (`time.process_time`, so other processes on the machine
count less than in wall time): the benchmark's chat request and answer (both bodies walked and scanned, less copying
them), its stream (16 pieces of about 4 characters), a whole 1 KB and 64 KB text, and 1 KB streamed 4 characters at a
time.
Under `valgrind --tool=callgrind` the same operations give instruction counts, which do not depend on the load.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from typing import Any

from bench.gateway import GUARDRAILS
from toolpolicy.guardrails import Guardrails, GuardrailSettings

REQUEST: dict[str, Any] = {
    "model": "mock/mock-gpt",
    "messages": [{"role": "user", "content": "Say eight words."}],
    "max_tokens": 16,
}
ANSWER: dict[str, Any] = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1,
    "model": "mock-gpt",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 8}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
}
TEXT = ("The quick brown fox jumps over the lazy dog. Lorem ipsum dolor sit amet, consectetur. " * 12)[:1024]


def operations(guardrails: Guardrails) -> dict[str, Callable[[], object]]:
    def scan(surface: Any) -> Any:
        return guardrails.scan(None, surface, request_id="bench", target="mock/mock-gpt")

    def copies() -> object:
        return copy.deepcopy(REQUEST), copy.deepcopy(ANSWER)

    def chat() -> object:
        request, answer = copies()  # the bodies are rewritten in place
        for surface, body in (("input", request), ("output", answer)):
            found = scan(surface)
            found.json(body)
            found.report()
        return answer

    def stream(pieces: list[str]) -> Callable[[], object]:
        def run() -> object:
            scanner = scan("output").stream()
            out = [scanner.feed(piece) for piece in pieces]
            return out, scanner.flush()

        return run

    return {
        "copying the chat bodies (subtracted)": copies,
        "chat request + answer": chat,
        "bench stream, 16 pieces": stream([f"w{i} " for i in range(16)]),
        "whole 1 KB text": lambda: scan("output").text(TEXT),
        "whole 64 KB text": lambda: scan("output").text(TEXT * 64),
        "1 KB streamed 4 characters at a time": stream([TEXT[i : i + 4] for i in range(0, len(TEXT), 4)]),
    }


def cpu_us(operation: Callable[[], object], repeat: int, budget: float = 0.3) -> float:
    """CPU microseconds per call, the best of `repeat` runs of about `budget` CPU seconds each."""
    calls = 1
    while True:  # enough calls per run to be measurable
        started = time.process_time()
        for _ in range(calls):
            operation()
        if time.process_time() - started > budget / 10:
            break
        calls *= 4
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(calls):
            operation()
        best = min(best, (time.process_time() - started) / calls)
    return best * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    guardrails = Guardrails([GuardrailSettings.model_validate(rule) for rule in GUARDRAILS])
    timed = {name: cpu_us(operation, args.repeat) for name, operation in operations(guardrails).items()}
    copying = timed.pop("copying the chat bodies (subtracted)")
    timed["chat request + answer"] -= copying
    for name, micros in timed.items():
        print(f"{name:40} {micros:8.1f} µs CPU")


if __name__ == "__main__":
    main()
