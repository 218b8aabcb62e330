"""The MCP hub: upstream MCP tool servers served to each virtual key as one MCP server."""
