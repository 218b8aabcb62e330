"""The report's answer to issue 13's "done when": for each profile, how much of the CPU a request costs is
Isthmus's own code and how much the server, client and loop under it, set beside the floor's own profile (the same
scenario and load on `bench.passthrough`) and, for a variant, beside the plain gateway's.
"""

from __future__ import annotations

from bench.attribution import OWN, STACK, Attribution, kind
from bench.figures import table
from bench.profile import RATE
from bench.results_model import Run

PROFILED_AT = 16
PLAIN = "isthmus"


def profile_title(path: str, scenario: str) -> str:
    return f"{path}, {scenario}, c={PROFILED_AT}"


def _path_and_scenario(title: str) -> tuple[str, str]:
    path, scenario = title.rsplit(f", c={PROFILED_AT}", 1)[0].split(", ", 1)
    return path, scenario


def _http(scenario: str) -> str:
    """The floor has no stdio upstream: a gateway in front of one is set beside the floor's HTTP MCP call."""
    return "mcp-modern" if scenario == "mcp-stdio" else scenario


def floor_of(run: Run, title: str) -> Attribution | None:
    path, scenario = _path_and_scenario(title)
    return None if path.startswith("floor") else run.attributions.get(profile_title("floor", _http(scenario)))


def plain_of(run: Run, title: str) -> tuple[str, Attribution] | None:
    """The plain gateway's profile of the same call, for a variant (governance, telemetry, a stdio upstream)."""
    path, scenario = _path_and_scenario(title)
    if path == PLAIN or path.startswith("floor"):
        return None
    plain_title = profile_title(PLAIN, _http(scenario))
    found = run.attributions.get(plain_title)
    return None if found is None else (plain_title, found)


def profiles_intro() -> list[str]:
    return [
        "### How the profiles read",
        "",
        f"py-spy at {RATE} Hz while wrk loads the path at c={PROFILED_AT}, each thread with its OS thread id and its "
        "C frames (`--threads --native`: to read C frames py-spy stops the process for each sample, which costs "
        "it throughput while sampled, and a process with many threads CPU). Each profile starts with where "
        "the CPU goes. A sample whose innermost frames are the C library's wrapper of a system call is the "
        "kernel's, whoever made the call: `kernel: socket I/O and polling` for `write`, `writev`, `send`, `read`, "
        "`recv`, `epoll_pwait` and the like (Isthmus's response writer's `transport.write`, uvicorn's "
        "`RequestResponseCycle.send` and aiohttp's writes alike), `kernel: other system calls` for the rest "
        "(SQLite's `pwrite64`/`fdatasync`, futex waits for the GIL, a probe's `clock_nanosleep`); the system time "
        "py-spy's stops cost each thread (under 1% of a core over the gateway's eight threads, in our runs) falls "
        "in these two rows. Every other sample belongs to its innermost Python frame in Isthmus's packages "
        "(isthmus, llm_proxy, mcp_hub, toolpolicy), a library (named), the event loop (asyncio; uvloop's C counts "
        "for the Python frame that entered it, `Runner.run` for the loop itself) or the floor's own code; C frames and "
        "standard-library frames (json, contextlib, dataclasses' `__init__`) count for whoever called them. The "
        "shares are of CPU, not of samples: py-spy samples a thread whenever it is running or waiting for a core, "
        "so each thread's own CPU (`/proc/PID/task/TID`) is shared among its own samples, its system time among "
        "those in a system call (the two kernel rows together are the threads' system time) and its user time "
        "among the rest. A thread that used no CPU weighs nothing however often it was sampled (the loop-lag "
        "probe, asleep in `time.sleep`), and waiting for a core inside a system call (woken from `epoll_pwait`, or "
        "after a loopback write woke the peer) counts for no more than the thread's system time; within its user "
        "time, waiting for a core still falls where the thread was preempted. CPU per request is the process's CPU "
        "over the requests it answered, both exact, in a window of the same load just before py-spy attaches, so "
        "py-spy's stops do not count (each profile gives both figures). The floor is profiled the same way, so its "
        "figures say what HTTP parsing, the client, the loop and the kernel's socket I/O cost a request with no "
        "logic at all.",
        "",
    ]


def _ms(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def verdict(run: Run, title: str) -> str | None:
    """The Met column's figure: Isthmus's share of the CPU per request, and what lies outside its code beside the
    floor's whole request."""
    mine = run.attributions.get(title)
    if mine is None:
        return None
    text = f"{mine.own:.0%} of CPU in Isthmus's code"
    if mine.cpu_ms is None:
        return text
    own = mine.ms([OWN]) or 0.0
    text += f", {_ms(own, 2)} of {_ms(mine.cpu_ms, 2)} ms/request"
    floor = floor_of(run, title)
    if floor is not None and floor.cpu_ms is not None:
        text += f"; outside it {_ms(mine.cpu_ms - own, 2)} ms, the floor's whole request {_ms(floor.cpu_ms, 2)} ms"
    plain = plain_of(run, title)
    if plain is not None and plain[1].cpu_ms is not None:
        more, own_more = mine.cpu_ms - plain[1].cpu_ms, own - (plain[1].ms([OWN]) or 0.0)
        text += f"; {more:+.2f} ms/request over `{PLAIN}`, {own_more:+.2f} of it in Isthmus's code"
    return text


def _named(attribution: Attribution, owners: list[str], limit: int = 4) -> str:
    parts = [f"{name} {_ms(attribution.ms([name]))}" for name in owners[:limit]]
    return ", ".join(parts) if parts else "none"


def _stack(attribution: Attribution) -> str:
    named = _named(attribution, list(STACK))
    return f"{_ms(attribution.ms(STACK))} ms in HTTP parsing, the client, the loop and the kernel ({named})"


def comparison(run: Run, title: str) -> list[str]:
    """Bullets: the floor's CPU per request, this path's, where it goes, and what lies outside Isthmus's code."""
    mine = run.attributions.get(title)
    if mine is None or mine.cpu_ms is None:
        return []
    path, _ = _path_and_scenario(title)
    others = [name for name in mine.shares if kind(name) == "library" and name not in STACK]
    rest = [name for name in mine.shares if name != OWN and name not in STACK and name not in others]
    if path.startswith("floor"):
        elsewhere = f"; {_named(mine, rest + others)}" if rest or others else ""
        return [f"- `{path}` spends {_ms(mine.cpu_ms)} ms of CPU per request: {_stack(mine)}{elsewhere}."]
    lines = []
    floor = floor_of(run, title)
    if floor is not None and floor.cpu_ms is not None:
        lines.append(
            f"- The floor, the same call at c={PROFILED_AT}, spends {_ms(floor.cpu_ms)} ms of CPU per request, "
            f"{_stack(floor)}."
        )
    lines.append(
        f"- `{path}` spends {_ms(mine.cpu_ms)} ms of CPU per request: {_ms(mine.ms([OWN]))} ms ({mine.own:.0%}) in "
        f"Isthmus's own code, {_stack(mine)}, {_ms(mine.ms(others))} ms in the other libraries it drives "
        f"({_named(mine, others)}), {_ms(mine.ms(rest))} ms elsewhere ({_named(mine, rest)})."
    )
    if floor is not None and floor.cpu_ms:
        outside = mine.cpu_ms - (mine.ms([OWN]) or 0.0)
        lines.append(
            f"- Outside Isthmus's code: {_ms(outside)} ms per request, {outside / floor.cpu_ms:.1f}× the floor's "
            f"whole request; HTTP parsing, the client, the loop and the kernel alone take {_ms(mine.ms(STACK))} ms "
            f"here against the floor's {_ms(floor.ms(STACK))} ms."
        )
    plain = plain_of(run, title)
    base_ms = None if plain is None else plain[1].cpu_ms
    if plain is not None and base_ms is not None:
        plain_title, base = plain
        deltas = {name: (mine.ms([name]) or 0.0) - (base.ms([name]) or 0.0) for name in {*mine.shares, *base.shares}}
        biggest = sorted(deltas, key=lambda name: (-abs(deltas[name]), name))[:4]
        lines.append(
            f"- Against `{plain_title}`: {mine.cpu_ms - base_ms:+.3f} ms per request; "
            + ", ".join(f"{name} {deltas[name]:+.3f}" for name in biggest)
            + "."
        )
    return lines


def attribution_section(run: Run, title: str) -> list[str]:
    """The table of owners (share of CPU, ms per request; the floor's and the plain gateway's beside) and the
    comparison, or nothing when the profile has no attribution."""
    mine = run.attributions.get(title)
    if mine is None or not mine.shares:
        return []
    floor = floor_of(run, title)
    plain = plain_of(run, title)
    references = [("the floor", floor)] if floor is not None else []
    if plain is not None:
        references.append((f"`{PLAIN}`", plain[1]))
    owners = list(mine.shares)
    for _, reference in references:
        owners += [name for name in reference.shares if name not in owners]
    header = ["Where the CPU goes", "kind", "share of CPU", "ms CPU per request"]
    header += [f"{label}, ms per request" for label, _ in references]
    rows = [
        [name, kind(name), f"{mine.shares.get(name, 0.0):.1%}", _ms(mine.ms([name]))]
        + [_ms(reference.ms([name])) for _, reference in references]
        for name in owners
    ]
    rows.append(["**all**", "", "100%", _ms(mine.cpu_ms)] + [_ms(reference.cpu_ms) for _, reference in references])
    return [*table(header, rows), "", *comparison(run, title), ""]
