"""Vertex AI through the official SDKs: a service account's JWT grant at a mock token endpoint that verifies it,
Gemini and Claude models streamed and not, embeddings, failover, spend and budgets, refused credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from llm_proxy import estimate
from llm_proxy.providers.vertex import VertexAdapter
from llm_proxy.providers.vertex.auth import REFRESH_MARGIN
from llm_proxy.upstream import Upstream
from tests.llm_proxy.conftest import KEY, Gateway, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider
from tests.llm_proxy.providers.vertex.mock import AUDIENCE, PROJECT, VertexMock, new_key, service_account_file
from toolpolicy.pricing import PriceTable
from toolpolicy.settings import LlmSettings, ProviderSettings
from toolpolicy.types import ModelTarget

pytestmark = pytest.mark.anyio

GEMINI = "vertex/gemini-2.5-flash"
CLAUDE = "vertex/claude-sonnet-4-5@20250929"
BASE = f"/v1/projects/{PROJECT}/locations/us-central1/publishers"


def vertex_provider(tmp_path: Path, vertex: VertexMock, **extra: Any) -> dict[str, Any]:
    credentials = service_account_file(tmp_path / "sa.json", vertex.account_key, vertex.token_uri)
    return {"kind": "vertex", "location": "us-central1", "credentials_file": str(credentials), "base_url": vertex.url}


@pytest.fixture
async def gateway(tmp_path: Path, vertex: VertexMock) -> AsyncIterator[Gateway]:
    settings = settings_for(tmp_path, {"vertex": vertex_provider(tmp_path, vertex)})
    async with serve_gateway(settings) as started:
        yield started


async def test_a_gemini_model_answers_the_openai_sdk_with_a_token_from_the_service_account(
    gateway: Gateway, vertex: VertexMock
) -> None:
    async with gateway.openai_sdk() as sdk:
        first = await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "hello"}])
        second = await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "again"}])
    assert first.choices[0].message.content == "echo:hello" and second.choices[0].message.content == "echo:again"
    assert first.usage is not None and (first.usage.prompt_tokens, first.usage.completion_tokens) == (4, 3)
    [grant] = vertex.grants  # one token for both requests, and the mock verified its JWT
    assert grant.problem is None and grant.claims["iss"] == vertex.email and grant.claims["aud"] == AUDIENCE
    seen = vertex.seen[0]
    assert seen.path == f"{BASE}/google/models/gemini-2.5-flash:generateContent"
    assert seen.headers["Authorization"] == "Bearer ya29.mock-1"
    assert seen.body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]


async def test_a_gemini_stream_uses_stream_generate_content_with_sse(gateway: Gateway, vertex: VertexMock) -> None:
    async with gateway.openai_sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model=GEMINI,
            messages=[{"role": "user", "content": "hi there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo:hi there"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert vertex.seen[0].path == f"{BASE}/google/models/gemini-2.5-flash:streamGenerateContent"
    assert vertex.seen[0].query == {"alt": "sse"}


async def test_a_claude_model_goes_to_raw_predict_with_the_vertex_anthropic_version(
    gateway: Gateway, vertex: VertexMock
) -> None:
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.chat.completions.create(
            model=CLAUDE, messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
        )
        stream = await sdk.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "streamed"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert reply.choices[0].message.content == "echo:hello" and text == "echo:streamed"
    sent, streamed = vertex.seen
    assert sent.path == f"{BASE}/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    assert streamed.path == f"{BASE}/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    assert sent.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent.body
    assert sent.body["system"] == "be brief" and streamed.body["stream"] is True
    assert "anthropic-version" not in sent.headers and sent.headers["Authorization"].startswith("Bearer ya29.")


async def test_the_anthropic_sdk_reaches_claude_natively_and_gemini_translated(
    gateway: Gateway, vertex: VertexMock
) -> None:
    async with gateway.anthropic_sdk() as sdk:
        native = await sdk.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
        )
        async with sdk.messages.stream(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            kinds = [event.type async for event in stream]
        translated = await sdk.messages.create(
            model=GEMINI, max_tokens=100, messages=[{"role": "user", "content": "to gemini"}]
        )
    assert native.content[0].type == "text" and native.content[0].text == "echo:hello"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert translated.content[0].type == "text" and translated.content[0].text == "echo:to gemini"
    first, second, third = vertex.seen
    assert first.body == {
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello"}],
        "anthropic_version": "vertex-2023-10-16",
    }
    assert first.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert second.path.endswith(":streamRawPredict")
    assert third.path.endswith("gemini-2.5-flash:generateContent")


async def test_embeddings_go_to_predict_with_instances(gateway: Gateway, vertex: VertexMock) -> None:
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.embeddings.create(
            model="vertex/text-embedding-005", input=["one", "two"], dimensions=3, encoding_format="float"
        )
    assert [item.embedding for item in reply.data] == [[0.25, -0.5, 0.0], [0.25, -0.5, 1.0]]
    assert reply.usage.prompt_tokens == 6
    seen = vertex.seen[0]
    assert seen.path == f"{BASE}/google/models/text-embedding-005:predict"
    assert seen.body == {
        "instances": [{"content": "one"}, {"content": "two"}],
        "parameters": {"outputDimensionality": 3},
    }


async def test_gemini_embedding_models_get_one_text_per_call(gateway: Gateway, vertex: VertexMock) -> None:
    async with gateway.openai_sdk() as sdk:
        reply = await sdk.embeddings.create(
            model="vertex/gemini-embedding-001", input=["a", "b", "c"], encoding_format="float"
        )
    assert len(reply.data) == 3 and len(vertex.seen) == 3
    assert all(len(seen.body["instances"]) == 1 for seen in vertex.seen)


async def test_a_claude_model_refuses_embeddings_by_name(gateway: Gateway) -> None:
    async with gateway.openai_sdk() as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.embeddings.create(model=CLAUDE, input="x")
    assert "Claude models on Vertex AI do not serve embeddings" in str(caught.value)


async def test_a_failing_gemini_model_fails_over_to_claude_on_the_same_provider(
    tmp_path: Path, vertex: VertexMock
) -> None:
    models = {"smart": {"targets": [GEMINI, CLAUDE]}}
    settings = settings_for(tmp_path, {"vertex": vertex_provider(tmp_path, vertex)}, models=models)
    vertex.fail_next = [(503, "UNAVAILABLE")] * 3  # the first attempt and both retries
    async with serve_gateway(settings) as gateway, gateway.openai_sdk() as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": "hello"}]
        )
    assert raw.headers["x-isthmus-route"] == CLAUDE and raw.headers["x-isthmus-attempts"] == "4"
    assert raw.parse().choices[0].message.content == "echo:hello"


async def test_vertex_requests_are_priced_from_the_shipped_table_and_held_to_budgets(
    tmp_path: Path, vertex: VertexMock
) -> None:
    price = PriceTable.with_overrides({}).lookup(ModelTarget("vertex", "gemini-2.5-flash"), "vertex")
    assert price is not None
    body = {"model": GEMINI, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
    reservation = price.worst_case(estimate.request_input(body), 5)
    # Room for one request's reservation, but not for a second once the first one's cost is spent.
    budget = float(reservation + Decimal("0.000001"))
    keys = [{"name": "metered", "team": "dev", "value": KEY, "models": ["*"], "budgets": [{"max_usd": budget}]}]
    settings = settings_for(tmp_path, {"vertex": vertex_provider(tmp_path, vertex)}, virtual_keys=keys)
    async with serve_gateway(settings) as gateway, gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(**body)
        [record] = await gateway.wait_records(1)
        with pytest.raises(openai.RateLimitError) as refused:
            await sdk.chat.completions.create(**body)
    assert record.target == GEMINI and record.cost_usd == price.cost(4, 3)
    assert record.cost_usd == Decimal("0.3") * 4 / 1_000_000 + Decimal("2.5") * 3 / 1_000_000
    assert "budget" in str(refused.value) and len(vertex.seen) == 1


async def test_a_claude_model_on_vertex_is_priced_by_its_dated_id(tmp_path: Path, vertex: VertexMock) -> None:
    settings = settings_for(tmp_path, {"vertex": vertex_provider(tmp_path, vertex)})
    async with serve_gateway(settings) as gateway, gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "hello"}])
        [record] = await gateway.wait_records(1)
    assert record.cost_usd == Decimal(3) * 13 / 1_000_000 + Decimal(15) * 9 / 1_000_000


async def test_a_service_account_with_the_wrong_key_gets_an_error_naming_the_provider(
    tmp_path: Path, vertex: VertexMock
) -> None:
    wrong = service_account_file(tmp_path / "wrong.json", new_key(), vertex.token_uri)
    provider = {"kind": "vertex", "credentials_file": str(wrong), "base_url": vertex.url}
    async with serve_gateway(settings_for(tmp_path, {"vertex": provider})) as gateway, gateway.openai_sdk() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "hello"}])
    assert caught.value.status_code == 502
    message = str(caught.value)
    assert "provider 'vertex' was refused an access token" in message and "Invalid JWT Signature" in message
    assert [grant.problem for grant in vertex.grants] == ["Invalid JWT Signature."] and not vertex.seen


async def test_a_permission_error_from_vertex_names_the_provider(gateway: Gateway, vertex: VertexMock) -> None:
    vertex.fail_next = [(403, "PERMISSION_DENIED")]
    async with gateway.openai_sdk() as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "hello"}])
    assert caught.value.status_code == 502
    assert "provider 'vertex' answered 403: mock PERMISSION_DENIED" in str(caught.value)


async def test_a_token_vertex_no_longer_honours_is_replaced_and_the_attempt_made_again(
    gateway: Gateway, vertex: VertexMock
) -> None:
    async with gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "one"}])
        vertex.revoke_tokens()
        reply = await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "two"}])
        vertex.revoke_tokens()
        stream = await sdk.chat.completions.create(
            model=CLAUDE, messages=[{"role": "user", "content": "three"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert reply.choices[0].message.content == "echo:two" and text == "echo:three"
    assert vertex.issued() == 3
    assert [seen.headers["Authorization"][-1] for seen in vertex.seen] == ["1", "1", "2", "2", "3"]


async def test_a_vertex_provider_sits_beside_others_in_a_fallback_chain(
    tmp_path: Path, vertex: VertexMock, mock: MockProvider
) -> None:
    providers = {
        "vertex": vertex_provider(tmp_path, vertex),
        "openai": {"kind": "openai", "base_url": f"{mock.url}/v1", "keys": [{"value": "sk-o"}]},
    }
    models = {"smart": {"targets": [GEMINI, "openai/gpt-4o-mini"]}}
    vertex.fail_next = [(429, "RESOURCE_EXHAUSTED")] * 3
    async with serve_gateway(settings_for(tmp_path, providers, models=models)) as gateway, gateway.openai_sdk() as sdk:
        stream = await sdk.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "hello"}], stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "echo:hello" and mock.seen[0].key == "sk-o"


async def test_the_responses_api_reaches_both_model_families_translated(gateway: Gateway, vertex: VertexMock) -> None:
    async with gateway.openai_sdk() as sdk:
        from_gemini = await sdk.responses.create(model=GEMINI, input="hello")
        from_claude = await sdk.responses.create(model=CLAUDE, input="there", reasoning={"effort": "low"})
        async with sdk.responses.stream(model=GEMINI, input="streamed") as stream:
            final = await stream.get_final_response()
    assert from_gemini.output_text == "echo:hello" and from_claude.output_text == "echo:there"
    assert final.output_text == "echo:streamed"
    gemini_seen, claude_seen, _ = vertex.seen
    assert gemini_seen.path.endswith("gemini-2.5-flash:generateContent")
    assert claude_seen.path.endswith(":rawPredict")
    assert claude_seen.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize(
    ("location", "base"),
    [
        (None, "https://us-central1-aiplatform.googleapis.com/v1"),
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com/v1"),
        ("global", "https://aiplatform.googleapis.com/v1"),
    ],
)
def test_the_default_base_url_follows_the_location(location: str | None, base: str) -> None:
    settings = ProviderSettings.model_validate({"kind": "vertex", "project": "p", "location": location})
    adapter = VertexAdapter("vertex", settings, Upstream(LlmSettings()))
    assert adapter.base_url == base and adapter.tokens.credentials is None  # ADC, looked up on first use
    where = location or "us-central1"
    assert adapter.model_url("google", "gemini-2.5-pro", "generateContent") == (
        f"{base}/projects/p/locations/{where}/publishers/google/models/gemini-2.5-pro:generateContent"
    )


def test_the_project_comes_from_the_credentials_file_unless_given(tmp_path: Path) -> None:
    path = str(service_account_file(tmp_path / "sa.json", new_key(), "https://oauth2.example/token"))
    from_file = ProviderSettings.model_validate({"kind": "vertex", "credentials_file": path})
    given = ProviderSettings.model_validate({"kind": "vertex", "credentials_file": path, "project": "other"})
    assert VertexAdapter("v", from_file, Upstream(LlmSettings())).project == PROJECT
    assert VertexAdapter("v", given, Upstream(LlmSettings())).project == "other"


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"kind": "vertex"}, "needs project"),
        ({"kind": "vertex", "project": "p", "keys": [{"value": "k"}]}, "not keys"),
        ({"kind": "vertex", "project": "p", "location": "US Central"}, "not a Google Cloud region"),
        ({"kind": "openai", "location": "us-central1"}, "settings of kind vertex only"),
    ],
)
def test_a_vertex_config_that_cannot_work_is_refused_with_the_reason(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ProviderSettings.model_validate(config)


async def test_the_gateway_refreshes_the_token_before_it_expires(gateway: Gateway, vertex: VertexMock) -> None:
    adapter = gateway.proxy.router.adapters["vertex"]
    assert isinstance(adapter, VertexAdapter)
    async with gateway.openai_sdk() as sdk:
        await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "one"}])
        expiry = adapter.tokens.expiry
        assert expiry is not None
        adapter.tokens.clock = lambda: expiry - REFRESH_MARGIN - timedelta(seconds=1)
        await sdk.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "two"}])
        adapter.tokens.clock = lambda: expiry - REFRESH_MARGIN + timedelta(seconds=1)
        await sdk.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": "three"}])
    assert [seen.headers["Authorization"] for seen in vertex.seen] == [
        "Bearer ya29.mock-1",
        "Bearer ya29.mock-1",
        "Bearer ya29.mock-2",
    ]
