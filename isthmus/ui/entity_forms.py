"""The key, team and customer forms: labelled fields to and from the admin API's JSON shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from toolpolicy.errors import InvalidRequest

PERIODS = ("1h", "1d", "1w", "1M")
_BUDGET = re.compile(r"^\$?(?P<usd>\d+(?:\.\d+)?)(?:\s+per\s+(?P<period>\S+))?(?P<rolling>\s+rolling)?$")


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _items(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def parse_budgets(text: str) -> list[dict[str, Any]]:
    """One budget a line: `25` (lifetime), `25 per 1d`, `100 per 1M rolling`."""
    budgets: list[dict[str, Any]] = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        match = _BUDGET.match(line)
        period = match.group("period") if match else None
        if match is None or (period is not None and period not in PERIODS):
            raise InvalidRequest(
                f"budget {line!r}: write USD, optionally 'per' a period ({', '.join(PERIODS)}) and 'rolling', "
                "e.g. '25 per 1d'",
                param="budgets",
            )
        budget: dict[str, Any] = {"max_usd": float(match.group("usd"))}
        if period is not None:
            budget["period"] = period
        if match.group("rolling"):
            budget["rolling"] = True
        budgets.append(budget)
    return budgets


def format_budgets(budgets: list[dict[str, Any]]) -> str:
    lines = []
    for budget in budgets:
        line = f"{budget['max_usd']:g}"
        if budget.get("period"):
            line += f" per {budget['period']}"
        if budget.get("rolling"):
            line += " rolling"
        lines.append(line)
    return "\n".join(lines)


def parse_mcp(text: str) -> dict[str, list[str]]:
    """One server a line: `docs: search_*, read_page` (`docs: *` for every tool)."""
    allowed: dict[str, list[str]] = {}
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        server, colon, tools = line.partition(":")
        globs = _items(tools)
        if not colon or not server.strip() or not globs:
            raise InvalidRequest(
                f"MCP allowlist line {line!r}: write 'server: tool, tool' (or 'server: *')", param="mcp"
            )
        allowed.setdefault(server.strip(), []).extend(globs)
    return allowed


def format_mcp(mcp: Mapping[str, list[str]]) -> str:
    return "\n".join(f"{server}: {', '.join(tools)}" for server, tools in mcp.items())


def parse_time(text: str) -> str | None:
    """A `datetime-local` value, read as UTC, as ISO 8601; empty for none."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a date and time", param="expires_at") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def format_time(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _rate_limit(form: Mapping[str, Any]) -> dict[str, str] | None:
    limit = {field: _text(form, f"rate_{field}") for field in ("requests", "tokens")}
    kept = {field: value for field, value in limit.items() if value}
    return kept or None


def entity_data(collection: str, form: Mapping[str, Any], current: Mapping[str, Any] | None) -> dict[str, Any]:
    """The admin API body for a create (`current` None) or an update of `current` from a submitted form."""
    data: dict[str, Any] = {"budgets": parse_budgets(_text(form, "budgets"))}
    if current is None:
        data["name"] = _text(form, "name")
    if collection == "teams":
        data["customer"] = _text(form, "customer") or None
    if collection == "keys":
        data["team"] = _text(form, "team") or None
        data["customer"] = _text(form, "customer") or None
        data["models"] = _items(_text(form, "models"))
        data["mcp"] = parse_mcp(_text(form, "mcp"))
        data["rate_limit"] = _rate_limit(form)
        mcp_limit = dict((current or {}).get("mcp_rate_limit") or {})
        calls = _text(form, "mcp_calls")
        if calls:
            mcp_limit["calls"] = calls
        else:
            mcp_limit.pop("calls", None)
        data["mcp_rate_limit"] = mcp_limit or None
        data["expires_at"] = parse_time(_text(form, "expires_at"))
        data["code_mode"] = {"on": True, "off": False}.get(_text(form, "code_mode"))
    return data


def form_values(record: Mapping[str, Any]) -> dict[str, str]:
    """A stored entity as the form's field values."""
    rate = record.get("rate_limit") or {}
    code_mode = record.get("code_mode")
    return {
        "name": record.get("name") or "",
        "team": record.get("team") or "",
        "customer": record.get("customer") or "",
        "models": ", ".join(record.get("models") or []),
        "mcp": format_mcp(record.get("mcp") or {}),
        "budgets": format_budgets(record.get("budgets") or []),
        "rate_requests": rate.get("requests") or "",
        "rate_tokens": rate.get("tokens") or "",
        "mcp_calls": (record.get("mcp_rate_limit") or {}).get("calls") or "",
        "expires_at": format_time(record.get("expires_at")),
        "code_mode": "" if code_mode is None else ("on" if code_mode else "off"),
    }
