"""What agent mode needs from whoever runs the tools: the one seam between the LLM proxy and the MCP hub.

The proxy never imports the hub; the app (`isthmus/agent_tools.py`) implements `ToolHost` with the hub's governed
call path and hands it to the proxy when both halves run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from toolpolicy.types import AgentPolicy, Principal


@dataclass(frozen=True, slots=True)
class AgentTool:
    """A tool offered to the model, named as the hub's `/mcp` names it (`<server>__<tool>`)."""

    name: str
    description: str
    parameters: dict[str, Any]
    """The tool's JSON Schema for its arguments."""

    def function(self) -> dict[str, Any]:
        """The OpenAI chat completions function tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What one tool call gave back, as the text the model reads."""

    text: str
    is_error: bool = False


class ToolHost(Protocol):
    """Lists and calls the tools a key's agent mode offers, under the key's governance (allowlist, limits, audit)."""

    def tools(self, principal: Principal, agent: AgentPolicy) -> list[AgentTool]:
        """The tools `principal` may use that `agent.tools` selects, live now."""
        ...

    async def call(
        self, principal: Principal, agent: AgentPolicy, name: str, arguments: dict[str, Any], *, request_id: str
    ) -> ToolOutput:
        """Call one tool; every failure (refused, unknown, upstream error) is an `is_error` output, never raised."""
        ...
