"""AWS Bedrock (`kind: bedrock`): Converse and ConverseStream with SigV4 or Bedrock API keys, InvokeModel embeddings."""

from llm_proxy.providers.bedrock.adapter import BedrockAdapter

__all__ = ["BedrockAdapter"]
