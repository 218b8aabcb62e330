"""The semantic cache's question: its text, and the hard filter it is searched within (the vectors: `vectors`).

Isolation is a hard filter, never a similarity score: a semantic match is searched only among entries of the same
scope, route, model and hash of every other parameter (`group_of`: the body without its conversation text). The
similarity decides only between questions that could share an answer anyway.
"""

from __future__ import annotations

from typing import Any

from llm_proxy.cache.keying import EntryKey, parameters_hash

TEXT_FIELDS = {"chat": ("messages",), "messages": ("messages", "system"), "responses": ("input", "instructions")}


def _text(content: Any) -> str | None:
    """A message's text, or None when it holds anything but text (images, files, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "output_text"):
                return None
            parts.append(str(part.get("text") or ""))
        return "\n".join(parts)
    return None


def question_text(route: str, body: dict[str, Any], max_messages: int) -> str | None:
    """The conversation as one text (`role: text` lines), or None when it cannot be cached semantically: more than
    `max_messages` messages, or content other than text."""
    lines: list[str] = []
    system = body.get("system") if route == "messages" else body.get("instructions") if route == "responses" else None
    if system is not None:
        text = _text(system)
        if text is None:
            return None
        lines.append(f"system: {text}")
    messages = body.get("input") if route == "responses" else body.get("messages")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not messages or len(messages) > max_messages:
        return None
    for message in messages:
        if not isinstance(message, dict) or message.get("type", "message") != "message":
            return None
        text = _text(message.get("content"))
        if text is None or message.get("tool_calls"):
            return None
        lines.append(f"{message.get('role')}: {text}")
    return "\n".join(lines)


def group_of(key: EntryKey, body: dict[str, Any]) -> str:
    """The hard filter: scope, route, model and the hash of every parameter but the conversation text."""
    rest = {name: value for name, value in body.items() if name not in TEXT_FIELDS[key.route]}
    return f"{key.scope}|{key.route}|{key.model}|{parameters_hash(rest)}"
