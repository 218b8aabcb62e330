"""An MCP server's `sampling:` block: whether the gateway itself answers the server's `sampling/createMessage`
requests with one of its LLM models, instead of (or when it cannot) relaying them to the calling client.

    mcp_servers:
      research:
        command: research-server
        sampling: {model: fast, max_tokens: 1024, when: client_lacks}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

SamplingWhen = Literal["client_lacks", "always", "never"]


class SamplingSettings(BaseModel):
    """Gateway-served sampling for one MCP server."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    model: str = Field(min_length=1)
    """The model that answers: an alias from `models:` or `provider/model`. The calling key's model allowlist,
    budgets and rate limits apply to it as to the key's own LLM requests."""
    max_tokens: int = Field(default=1024, ge=1)
    """The most output tokens one answer may use: the server's `maxTokens` is lowered to this, never raised."""
    when: SamplingWhen = "client_lacks"
    """`client_lacks`: relay to the calling client when it declared sampling, else the gateway answers; `always`:
    the gateway answers every request; `never`: relay only (the client's answer, or -32601 when it has none)."""


class _HasSampling(Protocol):
    @property
    def sampling(self) -> SamplingSettings | None: ...


def sampling_problems(
    servers: Mapping[str, _HasSampling], aliases: Collection[str], providers: Collection[str]
) -> list[str]:
    """Each server's `sampling.model` names a configured alias or a `provider/model` of a configured provider."""
    problems: list[str] = []
    for name, server in servers.items():
        sampling = server.sampling
        if sampling is None or sampling.when == "never" or sampling.model in aliases:
            continue
        provider, sep, model = sampling.model.partition("/")
        if not sep or not model:
            problems.append(
                f"mcp_servers.{name}.sampling.model: {sampling.model!r} is neither an alias in models nor "
                "'provider/model'"
            )
        elif provider not in providers:
            problems.append(f"mcp_servers.{name}.sampling.model: no provider named {provider!r} in providers")
    return problems
