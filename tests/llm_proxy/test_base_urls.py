"""Providers' `base_url` as users paste it: with or without the API version, with trailing slashes."""

from __future__ import annotations

from pathlib import Path

import anthropic
import openai
import pytest

from llm_proxy.providers.base import versioned
from llm_proxy.providers.openai import api_base
from tests.llm_proxy.conftest import KEY, serve_gateway, settings_for
from tests.llm_proxy.mock_provider import MockProvider

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1"),
        ("https://api.anthropic.com/v1", "https://api.anthropic.com/v1"),
        ("https://api.anthropic.com/v1/", "https://api.anthropic.com/v1"),
        ("https://gateway.example/acct/anthropic", "https://gateway.example/acct/anthropic/v1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
    ],
)
def test_anthropic_base_urls_get_their_version_once(base: str, expected: str) -> None:
    assert versioned(base, "v1") == expected


def test_gemini_keeps_any_version_it_is_given() -> None:
    root = "https://generativelanguage.googleapis.com"
    assert versioned(root, "v1beta") == f"{root}/v1beta"
    assert versioned(f"{root}/v1/", "v1beta") == f"{root}/v1"
    assert versioned(f"{root}/v1alpha", "v1beta") == f"{root}/v1alpha"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openai.com", "https://api.openai.com/v1"),
        ("https://api.openai.com/", "https://api.openai.com/v1"),
        ("https://api.openai.com/v1/", "https://api.openai.com/v1"),
        # OpenAI-compatible servers put their API where they like: taken as given, as the OpenAI SDK takes it.
        ("https://api.perplexity.ai", "https://api.perplexity.ai"),
        ("https://api.groq.com/openai/v1", "https://api.groq.com/openai/v1"),
        ("http://127.0.0.1:11434/v1/", "http://127.0.0.1:11434/v1"),
    ],
)
def test_openai_base_urls_are_taken_as_the_sdk_takes_them(base: str, expected: str) -> None:
    assert api_base(base) == expected


async def test_an_anthropic_provider_answers_at_each_pasted_form(tmp_path: Path, mock: MockProvider) -> None:
    forms = {"bare": mock.url, "slash": f"{mock.url}/", "v1": f"{mock.url}/v1", "v1slash": f"{mock.url}/v1/"}
    providers = {
        name: {"kind": "anthropic", "base_url": base, "keys": [{"value": "k"}]} for name, base in forms.items()
    }
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with anthropic.AsyncAnthropic(base_url=gateway.url, api_key=KEY, max_retries=0) as claude:
            for name in forms:
                await claude.messages.create(
                    model=f"{name}/claude-x", max_tokens=8, messages=[{"role": "user", "content": name}]
                )
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            chat = await sdk.chat.completions.create(model="bare/claude-x", messages=[{"role": "user", "content": "c"}])
    assert [seen.path for seen in mock.seen] == ["/v1/messages"] * 5
    assert chat.choices[0].message.content == "echo:c"


async def test_a_gemini_provider_answers_without_the_version_in_its_base_url(
    tmp_path: Path, mock: MockProvider
) -> None:
    providers = {"g": {"kind": "gemini", "base_url": mock.url, "keys": [{"value": "gk"}]}}
    async with serve_gateway(settings_for(tmp_path, providers)) as gateway:
        async with openai.AsyncOpenAI(base_url=gateway.v1, api_key=KEY, max_retries=0) as sdk:
            chat = await sdk.chat.completions.create(model="g/gemini-x", messages=[{"role": "user", "content": "g"}])
    assert chat.choices[0].message.content == "echo:g"
    assert [seen.path for seen in mock.seen] == ["/v1beta/models/gemini-x:generateContent"]
