"""Governance's own cost per LLM request, in instructions: admit, attempt and settle through the real Governor.

    .venv/bin/python -m bench.governed_cost                    # 400 requests, identical and varied amounts
    .venv/bin/python -m bench.governed_cost --requests 1000 --redis redis://127.0.0.1:6379/12
    .venv/bin/python -m bench.governed_cost --steady --redis redis://127.0.0.1:6379/12   # for an A/B

The key is governed as on `isthmus+gov`: its request and token rate limits, its lifetime budget, its team's rolling
day and its customer's month, with the counters in memory (`--redis URL`: in that Redis database).
`identical` sends the benchmark's request every time (`bench.instructions` sees only this case); `varied` gives
each request other input tokens and `max_tokens`, as production's prompts do, so the plan's amounts differ from
the recent ones. The process runs under `valgrind --tool=callgrind` with instrumentation off until its warm-up is
done (`bench.callgrind`); the figure is the instructions of the measured requests divided by their number. The
clock is fixed, so no window rolls over during a run.

`--steady` leaves out what moves with the machine's load rather than with the code: the spend ledger's and the rate
journal's writers write every 0.25 s of wall time, and valgrind's pace (the machine's load) decides how many requests
share a write, so their figures move by 10-25k Ir a request from run to run; a full collection of the warm-up's
objects may fall in the window or not. With it the writers wait an hour (nothing is written while counting) and the
warm-up's objects are frozen out of the collector's reach (`gc.freeze`): five runs of main's tree gave 307-317k
Ir identical, 382-401k varied; run both trees side by side for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.callgrind import Controlled, count_paused_run, missing_tools, valgrind_argv

WARMUP = 200
"""Requests before counting: caches filled, code paths taken once."""


QUIET_WRITERS = {"flush_interval": 3600, "spend_flush_interval": 3600, "rate_journal_flush_interval": 3600}
"""`--steady`: the store's writers wait an hour, so none writes while counting."""


def config(store: str, redis: str | None, *, steady: bool = False) -> dict[str, Any]:
    budget = 1_000_000.0
    return {
        "store": store,
        **({"audit": QUIET_WRITERS} if steady else {}),
        "redis": redis,
        "providers": {"mock": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "pricing": {"mock/*": {"input": 0.15, "output": 0.6, "max_output": 1024}},
        "customers": [{"name": "bench", "budgets": [{"max_usd": budget, "period": "1M"}]}],
        "teams": [
            {"name": "bench", "customer": "bench", "budgets": [{"max_usd": budget, "period": "1d", "rolling": True}]}
        ],
        "virtual_keys": [
            {
                "name": "bench",
                "team": "bench",
                "value": "isk-bench",
                "models": ["*"],
                "budgets": [{"max_usd": budget}],
                "rate_limit": {"requests": "1000000000/1m", "tokens": "1000000000/1m"},
            }
        ],
    }


async def child(requests: int, varied: bool, redis: str | None, steady: bool) -> None:
    from datetime import UTC, datetime

    from toolpolicy.governor import Call, Usage
    from toolpolicy.runtime import Governance
    from toolpolicy.settings import GatewaySettings
    from toolpolicy.types import ModelTarget

    with tempfile.TemporaryDirectory() as scratch:
        settings = GatewaySettings.model_validate(
            config(f"sqlite+aiosqlite:///{scratch}/store.db", redis, steady=steady)
        )
        governance = Governance(settings)
        fixed = datetime(2026, 12, 7, 12, 0, 30, tzinfo=UTC)
        governance.governor.clock = lambda: fixed
        await governance.start()
        try:
            principal = await governance.keys.resolve("isk-bench")
            target = ModelTarget.parse("mock/mock-gpt")

            async def one(index: int) -> None:
                input_tokens, max_tokens = (100 + index * 7 % 900, 16 + index * 13 % 1000) if varied else (10, 16)
                request_id = uuid.uuid4().hex
                call = Call(request_id, principal, target, input_tokens=input_tokens, max_output_tokens=max_tokens)
                admission = await governance.governor.admit(call)
                await admission.attempt(target)
                await admission.settle(Usage(tokens_in=input_tokens, tokens_out=max_tokens // 2))

            for index in range(WARMUP):
                await one(index)
            if steady:
                gc.collect()
                gc.freeze()
            print("ready", flush=True)
            sys.stdin.readline()
            for index in range(WARMUP, WARMUP + requests):
                await one(index)
            print("done", flush=True)
            sys.stdin.readline()
        finally:
            await governance.stop()


def measure(requests: int, varied: bool, redis: str | None, keep: Path | None, steady: bool) -> float:
    """Instructions per request, every thread of the process counted (the dump kept in `keep`, if given)."""
    import subprocess

    with tempfile.TemporaryDirectory() as scratch:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bench.governed_cost", "--child", "--requests", str(requests)]
        argv += ["--varied"] if varied else []
        argv += ["--redis", redis] if redis else []
        argv += ["--steady"] if steady else []
        stem = (keep or Path(scratch)) / f"callgrind.{'varied' if varied else 'identical'}"
        process = subprocess.Popen(valgrind_argv(stem, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        instructions = count_paused_run(process, Controlled(process.pid, stem))
        return instructions / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--redis", help="count in this Redis database instead of in memory")
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps here (for `callgrind_annotate`)")
    parser.add_argument("--steady", action="store_true", help="no store writes or full collections while counting")
    parser.add_argument("--varied", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.requests, args.varied, args.redis, args.steady))
        return
    if missing_tools():
        raise SystemExit(f"not on PATH: {', '.join(missing_tools())}")
    for varied in (False, True):
        figure = measure(args.requests, varied, args.redis, args.keep, args.steady)
        print(f"{'varied' if varied else 'identical'} amounts: {figure:,.0f} Ir per governed request", flush=True)


if __name__ == "__main__":
    main()
