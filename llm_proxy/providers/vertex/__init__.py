"""Google Cloud Vertex AI: Gemini and Claude models with the cloud's own credentials."""

from llm_proxy.providers.vertex.adapter import VertexAdapter

__all__ = ["VertexAdapter"]
