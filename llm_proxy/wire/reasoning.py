"""OpenAI's `reasoning_effort` <-> Anthropic's extended-thinking budget and Gemini's thinking config.

OpenAI names an effort (`none`, `minimal`, `low`, `medium`, `high`); Anthropic takes a token budget
(`thinking: {type: enabled, budget_tokens}`, at least 1024 and below `max_tokens`; Claude on Bedrock and Vertex
too); Gemini 2.5 takes a budget (`thinkingConfig.thinkingBudget`, 0 turns thinking off) and Gemini 3 a level
(`thinkingLevel`). The Gemini budgets are the ones Google's own OpenAI-compatible endpoint uses; Anthropic's start at
its 1024 minimum. Going back, an Anthropic budget picks the effort whose budget is nearest below it.
"""

from __future__ import annotations

from typing import Any

from toolpolicy.errors import InvalidRequest

EFFORTS = ("none", "minimal", "low", "medium", "high")
ANTHROPIC_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
"""`budget_tokens` per effort; `none` leaves thinking off."""
ANTHROPIC_MIN_BUDGET = 1024
GEMINI_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
GEMINI_LEVELS = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}
"""Gemini 3 thinks at `low` or `high` and cannot be turned off: the nearest level."""


def effort_of(body: dict[str, Any]) -> str | None:
    """A chat request's `reasoning_effort`, checked; None when absent (the Responses API's `reasoning.effort`
    arrives here translated)."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise InvalidRequest(f"reasoning_effort must be one of {', '.join(EFFORTS)}", param="reasoning_effort")
    return str(effort)


def anthropic_thinking(effort: str, requested: int | None, default: int) -> tuple[dict[str, Any] | None, int]:
    """The `thinking` block and the `max_tokens` to send for an effort and the client's `max_tokens` (`requested`).

    OpenAI counts reasoning within `max_completion_tokens`, and so does the budget check that reserved it: a client's
    limit stays the limit, and the budget gives way below it (a limit that leaves less than Anthropic's 1024 minimum
    is refused). Without a limit, `default` tokens are left for the answer above the budget.
    """
    budget = ANTHROPIC_BUDGETS.get(effort)
    if budget is None:
        return None, requested or default
    if requested is None:
        return {"type": "enabled", "budget_tokens": budget}, default + budget
    budget = min(budget, requested - 1)
    if budget < ANTHROPIC_MIN_BUDGET:
        raise InvalidRequest(
            f"reasoning_effort needs max_tokens above {ANTHROPIC_MIN_BUDGET} on Claude models", param="max_tokens"
        )
    return {"type": "enabled", "budget_tokens": budget}, requested


def gemini_thinking(effort: str, model: str) -> dict[str, Any]:
    """A `thinkingConfig` for an effort; thoughts are included so they come back as reasoning content."""
    if model.startswith("gemini-3"):
        return {"thinkingLevel": GEMINI_LEVELS[effort], "includeThoughts": True}
    budget = GEMINI_BUDGETS[effort]
    return {"thinkingBudget": budget, "includeThoughts": budget > 0}


def effort_for_budget(thinking: Any) -> str | None:
    """The OpenAI effort for an Anthropic `thinking` block: `none` when disabled, None when absent or unreadable."""
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "disabled":
        return "none"
    budget = thinking.get("budget_tokens")
    if thinking.get("type") != "enabled" or not isinstance(budget, int):
        return None
    chosen = "minimal"
    for effort, tokens in ANTHROPIC_BUDGETS.items():
        if budget >= tokens:
            chosen = effort
    return chosen
