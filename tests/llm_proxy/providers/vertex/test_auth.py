"""Vertex access tokens: cached, refreshed before expiry by an injected clock, one refresh for concurrent callers,
Application Default Credentials, and clear errors for files that cannot be used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from llm_proxy.errors import UpstreamUnavailable
from llm_proxy.providers.vertex.auth import REFRESH_MARGIN, CredentialsRefused, TokenSource, load_file
from tests.llm_proxy.providers.vertex.mock import PROJECT, VertexMock, new_key, service_account_file

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def source_for(tmp_path: Path, vertex: VertexMock, clock: Clock) -> TokenSource:
    credentials, project = load_file(
        str(service_account_file(tmp_path / "sa.json", vertex.account_key, vertex.token_uri))
    )
    assert project == PROJECT
    return TokenSource("vertex", credentials, clock=clock)


async def test_a_token_is_reused_until_the_margin_before_its_expiry_then_refreshed(
    tmp_path: Path, vertex: VertexMock
) -> None:
    clock = Clock()
    source = source_for(tmp_path, vertex, clock)
    first = await source.token()
    assert source.expiry is not None
    clock.now = source.expiry - REFRESH_MARGIN - timedelta(seconds=1)
    assert await source.token() == first and vertex.issued() == 1
    clock.now = source.expiry - REFRESH_MARGIN
    second = await source.token()
    assert second != first and vertex.issued() == 2 and source.refreshes == 2


async def test_concurrent_callers_share_one_refresh(tmp_path: Path, vertex: VertexMock) -> None:
    source = source_for(tmp_path, vertex, Clock())
    tokens: list[str] = []

    async def take() -> None:
        tokens.append(await source.token())

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(take)
    assert len(set(tokens)) == 1 and len(tokens) == 20
    assert vertex.issued() == 1 and source.refreshes == 1


async def test_a_refused_grant_is_a_401_naming_the_provider_and_is_not_cached(
    tmp_path: Path, vertex: VertexMock
) -> None:
    path = service_account_file(tmp_path / "other.json", new_key(), vertex.token_uri)
    credentials, _ = load_file(str(path))
    source = TokenSource("vertex-eu", credentials, clock=Clock())
    for _ in range(2):
        with pytest.raises(CredentialsRefused) as caught:
            await source.token()
        assert caught.value.upstream_status == 401 and caught.value.key_rejected
        assert "provider 'vertex-eu' was refused an access token" in caught.value.message
    assert len(vertex.grants) == 2 and not source.fresh()


async def test_an_unreachable_token_endpoint_is_retryable(tmp_path: Path, vertex: VertexMock) -> None:
    await vertex.close()  # nothing listens at token_uri any more
    source = source_for(tmp_path, vertex, Clock())
    with pytest.raises(UpstreamUnavailable) as caught:
        await source.token()
    assert caught.value.retry_target and "provider 'vertex'" in caught.value.message


async def test_without_a_file_application_default_credentials_are_used(
    tmp_path: Path, vertex: VertexMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = service_account_file(tmp_path / "adc.json", vertex.account_key, vertex.token_uri)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    source = TokenSource("vertex", None, clock=Clock())
    assert (await source.token()).startswith("ya29.mock-")
    assert source.project == PROJECT and vertex.issued() == 1


async def test_no_application_default_credentials_is_a_401_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    source = TokenSource("vertex", None, clock=Clock())
    with pytest.raises(CredentialsRefused) as caught:
        await source.token()
    assert "found no Application Default Credentials" in caught.value.message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read as JSON"),
        ("{not json", "cannot be read as JSON"),
        ('{"type": "service_account", "client_email": "x@y"}', "cannot be used"),
        ('{"type": "mystery"}', "cannot be used"),
    ],
)
def test_a_credentials_file_that_cannot_be_used_is_a_clear_error(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=problem) as caught:
        load_file(str(path))
    assert str(path) in str(caught.value)
