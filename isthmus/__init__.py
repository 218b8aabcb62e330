"""Isthmus: the composition of the MCP hub, the LLM proxy and the governance core into one gateway."""

__version__ = "0.1.0"
