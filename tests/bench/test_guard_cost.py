"""The guardrail cost harness runs the operations it names, on text the rules leave alone."""

from __future__ import annotations

import pytest

from bench import guard_cost
from bench.gateway import GUARDRAILS
from toolpolicy.guardrails import Guardrails, GuardrailSettings


def test_each_operation_scans_and_changes_nothing() -> None:
    guardrails = Guardrails([GuardrailSettings.model_validate(rule) for rule in GUARDRAILS])
    operations = guard_cost.operations(guardrails)
    assert operations["chat request + answer"]() == guard_cost.ANSWER
    assert operations["whole 1 KB text"]() == guard_cost.TEXT
    streamed = operations["1 KB streamed 4 characters at a time"]()
    assert isinstance(streamed, tuple)
    pieces, rest = streamed
    assert "".join(pieces) + rest == guard_cost.TEXT  # held back, then all let out


def test_main_prints_one_line_per_operation(capsys: pytest.CaptureFixture[str]) -> None:
    guard_cost.main(["--repeat", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "chat request + answer",
        "bench stream, 16 pieces",
        "whole 1 KB text",
        "whole 64 KB text",
        "1 KB streamed 4 characters at a time",
    ]
