"""Agent mode: the gateway runs MCP tools inside a model call (docs/agent-mode.md).

The one entry point is `AgentLoop` (which requests it takes; `AgentRun` per request, in chat completions format);
`AgentEdge` serves it on `/v1/chat/completions` and `/v1/messages`; `ToolHost` is what the app supplies (the hub).
"""

from llm_proxy.agent.edge import AgentEdge
from llm_proxy.agent.events import AgentItem, Chunk, RunEnded, StopReason, ToolCallFinished, ToolCallStarted
from llm_proxy.agent.host import AgentTool, ToolHost, ToolOutput
from llm_proxy.agent.loop import AgentLoop, AgentRun

__all__ = [
    "AgentEdge",
    "AgentItem",
    "AgentLoop",
    "AgentRun",
    "AgentTool",
    "Chunk",
    "RunEnded",
    "StopReason",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolHost",
    "ToolOutput",
]
