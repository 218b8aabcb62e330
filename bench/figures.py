"""Reading one run's figures: added latency, throughput, and their formatting, shared by the report's sections."""

from __future__ import annotations

import re
from collections.abc import Iterable

from bench.results_model import Run


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def rps_text(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "—"
    return f"{numerator / denominator:.2f}×"


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def added(run: Run, path: str, scenario: str, quantile: str) -> float | None:
    """The path's latency at c=1 minus the direct path's, at the same percentile."""
    mine, direct = run.load(path, scenario, 1), run.load("direct", scenario, 1)
    if mine is None or direct is None:
        return None
    value: float = getattr(mine, f"{quantile}_ms") - getattr(direct, f"{quantile}_ms")
    return value


def rps(run: Run, path: str, scenario: str, connections: int) -> float | None:
    result = run.load(path, scenario, connections)
    return None if result is None else result.rps


def anchor(title: str) -> str:
    """The link to a `###` heading, as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return "#" + re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
