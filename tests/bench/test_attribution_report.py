"""A missed target's Met column says how much of a request's CPU is Isthmus's own code and how much lies outside
it, beside the floor's whole request; each profile's section sets the owners beside the floor's and the plain
gateway's."""

from __future__ import annotations

from bench.attribution import CLIENT, KERNEL, LOOP, NO_CALLER, OWN, SERVER, Attribution
from bench.attribution_report import attribution_section, comparison, verdict
from bench.loadgen import LoadResult
from bench.report import render
from bench.results_model import PathInfo, Run

FLOOR = Attribution({SERVER: 0.3, CLIENT: 0.3, LOOP: 0.2, KERNEL: 0.1, "the floor's own code": 0.1}, 500, 0.2)
PLAIN = Attribution(
    {OWN: 0.4, CLIENT: 0.15, SERVER: 0.15, LOOP: 0.1, "pydantic": 0.1, KERNEL: 0.05, NO_CALLER: 0.05}, 1000, 0.8
)
GOVERNED = Attribution({OWN: 0.5, CLIENT: 0.15, SERVER: 0.1, LOOP: 0.1, "redis/hiredis": 0.15}, 1000, 1.2)


def _load(connections: int, rps: float) -> LoadResult:
    counts = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, "bad": 0}
    return LoadResult(connections, int(rps * 5), 5.0, 1.0, 1.5, 3.0, 1.0, 6.0, counts)


def _run() -> Run:
    run = Run(connections=(1, 16), duration=5, warmup=1)
    for name, kind, rps in (("floor", "floor", 5000), ("isthmus", "gateway", 1500), ("isthmus+gov", "gateway", 900)):
        run.paths[name] = PathInfo(name, kind)
        run.loads[(name, "chat", 16)] = _load(16, rps)
    for title, attribution in (("floor", FLOOR), ("isthmus", PLAIN), ("isthmus+gov", GOVERNED)):
        run.profiles[f"{title}, chat, c=16"] = "1,000 rps while sampled at 200 Hz."
        run.attributions[f"{title}, chat, c=16"] = attribution
    return run


def test_a_missed_target_shows_isthmuss_share_and_what_lies_outside_its_code_beside_the_floor() -> None:
    text = render(_run(), "2026-01-01")
    assert (
        "| Chat, c=16: ≥ 70% of the floor | 1,500 of 5,000 rps (floor) = 30% | **no**: 40% of CPU in Isthmus's code, "
        "0.32 of 0.80 ms/request; outside it 0.48 ms, the floor's whole request 0.20 ms; "
        "see [Profile: isthmus, chat, c=16](#profile-isthmus-chat-c16) |" in text
    )
    # a variant is also set beside the plain gateway: what it adds, and how much of that is Isthmus's code
    assert (
        "| 40% (900 vs 1,500 rps) | **no**: 50% of CPU in Isthmus's code, 0.60 of 1.20 ms/request; outside it 0.60 ms, "
        "the floor's whole request 0.20 ms; +0.40 ms/request over `isthmus`, +0.28 of it in Isthmus's code; see "
        in text
    )
    assert "### How the profiles read" in text


def test_without_the_floors_profile_the_figure_is_isthmuss_share_alone() -> None:
    run = _run()
    del run.attributions["floor, chat, c=16"]
    assert verdict(run, "isthmus, chat, c=16") == "40% of CPU in Isthmus's code, 0.32 of 0.80 ms/request"
    assert verdict(run, "isthmus, stream, c=16") is None
    shares_only = Attribution({OWN: 0.25, LOOP: 0.75}, 40)
    run.attributions["isthmus, chat, c=16"] = shares_only
    assert verdict(run, "isthmus, chat, c=16") == "25% of CPU in Isthmus's code"


def test_the_section_sets_each_owner_beside_the_floor_and_the_plain_gateway() -> None:
    lines = attribution_section(_run(), "isthmus+gov, chat, c=16")
    assert lines[0] == (
        "| Where the CPU goes | kind | share of CPU | ms CPU per request | the floor, ms per request "
        "| `isthmus`, ms per request |"
    )
    assert "| Isthmus's own code | Isthmus | 50.0% | 0.600 | 0.000 | 0.320 |" in lines
    assert "| redis/hiredis | library | 15.0% | 0.180 | 0.000 | 0.000 |" in lines
    assert "| pydantic | library | 0.0% | 0.000 | 0.000 | 0.080 |" in lines
    assert "| **all** |  | 100% | 1.200 | 0.200 | 0.800 |" in lines


def test_the_comparison_says_what_the_floor_and_the_gateway_spend_per_request() -> None:
    run = _run()
    assert comparison(run, "isthmus, chat, c=16") == [
        "- The floor, the same call at c=16, spends 0.200 ms of CPU per request, 0.180 ms in HTTP parsing, the client, "
        "the loop and the kernel (HTTP server: uvicorn/httptools 0.060, HTTP client: aiohttp 0.060, event loop "
        "(uvloop, asyncio) 0.040, kernel: socket I/O and polling 0.020).",
        "- `isthmus` spends 0.800 ms of CPU per request: 0.320 ms (40%) in Isthmus's own code, 0.360 ms in HTTP "
        "parsing, the client, the loop and the kernel (HTTP server: uvicorn/httptools 0.120, HTTP client: aiohttp "
        "0.120, event loop (uvloop, asyncio) 0.080, kernel: socket I/O and polling 0.040), 0.080 ms in the other "
        "libraries it drives (pydantic 0.080), 0.040 ms elsewhere (standard library, no caller 0.040).",
        "- Outside Isthmus's code: 0.480 ms per request, 2.4× the floor's whole request; HTTP parsing, the client, "
        "the loop and the kernel alone take 0.360 ms here against the floor's 0.180 ms.",
    ]
    assert comparison(run, "isthmus+gov, chat, c=16")[-1] == (
        "- Against `isthmus, chat, c=16`: +0.400 ms per request; Isthmus's own code +0.280, redis/hiredis +0.180, "
        "pydantic -0.080, HTTP client: aiohttp +0.060."
    )
    assert comparison(run, "floor, chat, c=16") == [
        "- `floor` spends 0.200 ms of CPU per request: 0.180 ms in HTTP parsing, the client, the loop and the kernel "
        "(HTTP server: uvicorn/httptools 0.060, HTTP client: aiohttp 0.060, event loop (uvloop, asyncio) 0.040, "
        "kernel: socket I/O and polling 0.020); the floor's own code 0.020."
    ]


def test_a_stdio_gateway_is_set_beside_the_floors_http_mcp_call() -> None:
    run = _run()
    run.attributions["floor, mcp-modern, c=16"] = FLOOR
    run.attributions["isthmus, mcp-modern, c=16"] = PLAIN
    run.attributions["isthmus-stdio, mcp-stdio, c=16"] = GOVERNED
    figure = verdict(run, "isthmus-stdio, mcp-stdio, c=16")
    assert figure is not None
    assert figure.endswith(
        "the floor's whole request 0.20 ms; +0.40 ms/request over `isthmus`, +0.28 of it in Isthmus's code"
    )
