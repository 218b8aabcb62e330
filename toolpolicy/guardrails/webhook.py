"""`detect: webhook`: the text goes to an external guardrail service, whose verdict blocks or logs it.

Two request shapes: OpenAI's moderation API (`POST /v1/moderations` with `{"model", "input"}`, flagged when
`results[0].flagged`; the categories found are the flagged ones) and Azure AI Content Safety's text analysis
(`POST {endpoint}/contentsafety/text:analyze?api-version=...` with `{"text", "categories"?}`, flagged when any
`categoriesAnalysis[].severity` reaches `threshold`). The HTTP call itself is injected (`WebhookPost`): toolpolicy
does no I/O; `isthmus` gives it an aiohttp client. A timeout or failure lets the text through (`on_error: allow`,
fail open) or blocks it (`on_error: block`, fail closed), per rule.

A webhook sees whole texts: requests, non-streamed answers, tool arguments and results. A streamed answer under a
blocking webhook rule is held until a verdict on it (on the whole answer, or on the text so far every
`stream_window` characters); under `log` rules alone it flows, and the verdict comes at its end.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

logger = logging.getLogger(__name__)


class WebhookError(Exception):
    """The service did not give a verdict: a timeout, a connection error, a non-2xx status or an unreadable body."""


class WebhookPost(Protocol):
    """POSTs a JSON body and returns the JSON object answered; raises `WebhookError` on any failure."""

    async def __call__(
        self, url: str, headers: dict[str, str], body: dict[str, Any], timeout: float
    ) -> dict[str, Any]: ...


class WebhookSettings(BaseModel):
    """Where and how a `webhook` rule asks for a verdict."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    kind: Literal["openai_moderation", "azure_content_safety"]
    """The request shape: OpenAI's moderation API or Azure AI Content Safety's `text:analyze`."""
    url: str = Field(pattern=r"^https?://")
    """The full URL, e.g. https://api.openai.com/v1/moderations or
    https://<name>.cognitiveservices.azure.com/contentsafety/text:analyze?api-version=2024-09-01."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers sent (e.g. `Authorization: Bearer ...` or `Ocp-Apim-Subscription-Key: ...`)."""
    timeout: float = Field(default=5.0, gt=0, le=60)
    """Seconds to wait for the verdict."""
    on_error: Literal["allow", "block"] = "allow"
    """No verdict (timeout, error): `allow` lets the text through (fail open), `block` refuses it (fail closed)."""
    model: str | None = None
    """`openai_moderation`: the moderation model (the service's default when null)."""
    categories: list[str] | None = None
    """`azure_content_safety`: the categories to analyse (Hate, SelfHarm, Sexual, Violence; the service's default
    when null)."""
    threshold: int = Field(default=2, ge=0, le=7)
    """`azure_content_safety`: the severity from which a category counts as found."""
    stream_window: int | None = Field(default=None, ge=64, le=1_000_000)
    """Streamed answers under a blocking rule: characters of answer let out per verdict (each verdict is on the whole
    answer so far). Null: the whole answer is held until one verdict at its end."""


def request_body(settings: WebhookSettings, text: str) -> dict[str, Any]:
    if settings.kind == "openai_moderation":
        body: dict[str, Any] = {"input": text}
        if settings.model is not None:
            body["model"] = settings.model
        return body
    body = {"text": text}
    if settings.categories is not None:
        body["categories"] = settings.categories
    return body


def flagged(settings: WebhookSettings, reply: dict[str, Any]) -> list[str]:
    """The categories the service found (empty: the text passes); raises `WebhookError` on an unexpected shape."""
    try:
        if settings.kind == "openai_moderation":
            found: list[str] = []
            for result in reply["results"]:
                if result.get("flagged"):
                    names = [name for name, hit in (result.get("categories") or {}).items() if hit]
                    found.extend(names or ["flagged"])
            return sorted(set(found))
        return sorted(
            {
                str(entry["category"])
                for entry in reply["categoriesAnalysis"]
                if (entry.get("severity") or 0) >= settings.threshold
            }
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WebhookError(f"unexpected {settings.kind} answer: {type(exc).__name__}") from None


async def verdict(settings: WebhookSettings, post: WebhookPost | None, text: str) -> list[str]:
    """The categories found in `text`, or `["webhook_unavailable"]` when there is no verdict and the rule fails
    closed; empty when it passes (or fails open)."""
    if post is None:
        return ["webhook_unavailable"] if settings.on_error == "block" else []
    headers = {name: value.get_secret_value() for name, value in settings.headers.items()}
    try:
        reply = await post(settings.url, headers, request_body(settings, text), settings.timeout)
        return flagged(settings, reply)
    except WebhookError as exc:
        logger.warning("guardrail webhook %s gave no verdict (%s); on_error: %s", settings.url, exc, settings.on_error)
        return ["webhook_unavailable"] if settings.on_error == "block" else []
