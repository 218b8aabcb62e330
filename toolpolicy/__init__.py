"""Isthmus' governance and telemetry core, shared by the MCP hub and the LLM proxy.

Transport-agnostic by rule (ruff TID251): nothing here imports starlette, mcp or an HTTP client.
"""
