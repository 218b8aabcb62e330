"""The LLM proxy: OpenAI- and Anthropic-compatible endpoints over many providers."""
