"""A Vertex AI mock per test, trusting a fresh service-account key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.llm_proxy.providers.vertex.mock import VertexMock, new_key


@pytest.fixture
async def vertex() -> AsyncIterator[VertexMock]:
    mock = VertexMock(new_key())
    await mock.start()
    try:
        yield mock
    finally:
        await mock.close()
