"""The MCP hub: upstream MCP tool servers served to each virtual key as one MCP server."""

from mcp_hub.component import McpHub

__all__ = ["McpHub"]
