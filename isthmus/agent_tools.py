"""Agent mode's tool host: the MCP hub's tools, listed and called for a key through the hub's governed path.

The LLM proxy's agent loop (`llm_proxy.agent`) asks for tools by key; this answers with what `/mcp` would list to
that key narrowed by the key's `agent.tools` globs (as an `x-isthmus-tools` header narrows it), and calls them
through `HubTools.call` (allowlist, rate limits, per-server limits, cost, one `tool_call` audit record each, with
`via: "agent"` and the model request's id).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import mcp_types as types

from llm_proxy.agent import AgentTool, ToolOutput
from mcp_hub import McpHub
from mcp_hub.access import Caller
from mcp_hub.relay.rounds import InputRequired
from toolpolicy.errors import GatewayError
from toolpolicy.types import AgentPolicy, Principal

logger = logging.getLogger(__name__)

AGENT_VIA = "agent"
"""The `via` of tool calls agent mode makes, in their audit records."""


class HubAgentTools:
    """`llm_proxy.agent.ToolHost` over the hub."""

    def __init__(self, hub: McpHub) -> None:
        self.hub = hub

    def _caller(self, principal: Principal, agent: AgentPolicy) -> Caller:
        # No secret: the key was resolved for this request, and no long-lived session re-checks it.
        return Caller(principal, "", None, agent.tools, self.hub.code_mode_servers)

    def tools(self, principal: Principal, agent: AgentPolicy) -> list[AgentTool]:
        return [
            AgentTool(tool.name, tool.description or tool.title or "", dict(tool.input_schema))
            for tool in self.hub.tools.list(self._caller(principal, agent))
            if agent.tools.matches(tool.name)  # Code Mode's meta-tools are listed whatever the narrowing says
        ]

    async def call(
        self, principal: Principal, agent: AgentPolicy, name: str, arguments: dict[str, Any], *, request_id: str
    ) -> ToolOutput:
        if not agent.tools.matches(name):
            return ToolOutput(f"Unknown tool: {name}", is_error=True)
        try:
            result = await self.hub.tools.call(
                self._caller(principal, agent), name, arguments, request_id=request_id, via=AGENT_VIA
            )
        except GatewayError as exc:
            return ToolOutput(exc.message, is_error=True)
        except InputRequired:
            return ToolOutput(f"{name} asked for input that no one can give in agent mode.", is_error=True)
        return ToolOutput(result_text(result), is_error=bool(result.is_error))


def result_text(result: types.CallToolResult) -> str:
    """What the model reads of a result: its text parts; other parts and structured content as JSON."""
    parts: list[str] = []
    for part in result.content:
        if isinstance(part, types.TextContent):
            parts.append(part.text)
        else:
            parts.append(json.dumps(part.model_dump(mode="json", by_alias=True, exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)
