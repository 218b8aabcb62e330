"""What an agent run yields while streaming: the model's chunks, and the gateway's tool steps between them.

A host renders the chunks in its API's shape (chat: as they are; Messages: through `ChunksToEvents`; Responses:
its own events) and may show the tool steps (Responses: `response.mcp_call.*`) or ignore them (chat).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from llm_proxy.agent.host import ToolOutput

StopReason = Literal["answered", "client_tools", "max_steps", "budget"]
"""Why a run ended: the model answered; it asked for a client tool; `max_steps` model calls were made and the last
still asked for gateway tools; the key's budgets or limits could not cover the next model call."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One OpenAI chat completion chunk for the client (same `id`, `model` and `created` throughout the run)."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The gateway is about to call a tool the model asked for."""

    step: int
    """The model call (1-based) that asked for it."""
    call_id: str
    """The model's tool call id."""
    name: str
    arguments: str
    """The arguments as the model wrote them (JSON text)."""


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call the gateway made is done; its output goes back to the model."""

    step: int
    call_id: str
    name: str
    arguments: str
    output: ToolOutput


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The last item of a stream: why the run ended and how many model calls it made."""

    reason: StopReason
    steps: int


AgentItem = Chunk | ToolCallStarted | ToolCallFinished | RunEnded
