"""AWS Bedrock: chat through the Converse and ConverseStream APIs, embeddings through InvokeModel.

Requests are signed with SigV4 (service `bedrock`, the provider's region) by botocore, or carry a Bedrock API key as
a bearer token when the provider has `keys`. A model is named by its Bedrock id, inference profile or ARN after the
provider's name: `bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0`, `bedrock/us.amazon.nova-pro-v1:0`,
`bedrock/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-3-70b-instruct-v1:0`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from yarl import URL

from llm_proxy.errors import UnsupportedByProvider, UpstreamBadResponse
from llm_proxy.providers.base import Attempt, Op, Reply, join_url
from llm_proxy.providers.bedrock import converse, embed
from llm_proxy.upstream import Upstream, dumps
from llm_proxy.wire import anthropic, openai
from llm_proxy.wire.anthropic_stream import EventsToChunks
from toolpolicy.settings import ProviderSettings

if TYPE_CHECKING:
    from llm_proxy.providers.bedrock.auth import AwsSigner

EVENT_STREAM = "application/vnd.amazon.eventstream"


class BedrockAdapter:
    kind: ClassVar[str] = "bedrock"
    ops: ClassVar[frozenset[Op]] = frozenset({"chat", "embeddings"})
    needs_key: ClassVar[bool] = False
    """Without `keys`, requests are signed with AWS credentials instead of carrying a Bedrock API key."""
    default_models: ClassVar[tuple[str, ...]] = ()
    lists_models: ClassVar[bool] = False
    """Bedrock lists foundation models on its control-plane endpoint, not the runtime one `base_url` names, and
    most must be enabled per account first: a bedrock provider lists its configured `models:` only."""

    def __init__(self, name: str, settings: ProviderSettings, upstream: Upstream) -> None:
        self.name = name
        self.upstream = upstream
        region = settings.region or "us-east-1"  # settings require it for this kind
        self.base_url = (settings.base_url or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        # botocore (about 0.2 s and 9 MiB to import) is loaded only by gateways that have a bedrock provider.
        from llm_proxy.providers.bedrock.auth import AwsSigner

        self.signer: AwsSigner = AwsSigner(name, settings, region)

    def url(self, model: str, action: str) -> str:
        # The id is percent-encoded once (`:` and `/` of ARNs included), as AWS's SDKs send it.
        return join_url(self.base_url, f"model/{quote(model, safe='')}/{action}")

    async def request(self, url: str, body: bytes, key: str | None, accept: str) -> tuple[URL, dict[str, str]]:
        """The URL to send as it is and the headers: a bearer API key, or a SigV4 signature over these bytes."""
        headers = {"content-type": "application/json", "accept": accept}
        if key:
            headers["authorization"] = f"Bearer {key}"
        else:
            headers = await self.signer.sign(url, headers, body)
        return URL(url, encoded=True), headers

    async def list_models(self, key: str | None) -> list[str]:
        raise UnsupportedByProvider(f"provider {self.name!r}: list Bedrock models under the provider's models:")

    async def send(self, attempt: Attempt) -> Reply:
        if attempt.op == "embeddings":
            return await embed.embeddings(self, attempt)
        payload, json_tool = converse.chat_to_converse(attempt.body, attempt.model)
        body = dumps(payload)
        url, headers = await self.request(self.url(attempt.model, "converse"), body, attempt.key, "application/json")
        answer, _ = await self.upstream.post_json(self.name, url, headers, body)
        if not isinstance(answer.get("output"), dict):
            raise UpstreamBadResponse(f"provider {self.name!r} answered without an 'output' object")
        message = converse.converse_to_message(answer, attempt.model)
        completion = anthropic.message_to_completion(message, json_tool)
        return Reply(completion, openai.usage_of(completion.get("usage")))

    async def stream(self, attempt: Attempt) -> AsyncGenerator[dict[str, Any], None]:
        from llm_proxy.providers.bedrock.stream import ConverseToEvents, converse_events

        payload, json_tool = converse.chat_to_converse(attempt.body, attempt.model)
        body = dumps(payload)
        url, headers = await self.request(self.url(attempt.model, "converse-stream"), body, attempt.key, EVENT_STREAM)
        events = ConverseToEvents(attempt.model)
        chunks = EventsToChunks(json_tool)
        raw = self.upstream.post_stream(self.name, url, headers, body)
        async with aclosing(raw), aclosing(converse_events(self.name, raw)) as stream:
            async for kind, event in stream:
                for translated in events.feed(kind, event):
                    for chunk in chunks.feed(translated):
                        yield chunk
        for translated in events.finish():
            for chunk in chunks.feed(translated):
                yield chunk
