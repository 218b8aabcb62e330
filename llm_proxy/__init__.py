"""The LLM proxy: OpenAI- and Anthropic-compatible endpoints over many providers."""

from llm_proxy.component import LlmProxy

__all__ = ["LlmProxy"]
