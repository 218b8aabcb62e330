"""The quickstart config serves `mcp-server-time` and the demo server through `/mcp`, to both eras, per key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import MODES, Gateway, serving
from toolpolicy.config import load_config_text

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[2]


def quickstart_text(store: Path) -> str:
    """The real quickstart file, on a store of the test's own."""
    text = (ROOT / "examples" / "quickstart.yaml").read_text()
    return text.replace("sqlite+aiosqlite:///./isthmus.db", f"sqlite+aiosqlite:///{store}")


@pytest.fixture(scope="module")
async def quickstart(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    settings = load_config_text(quickstart_text(tmp_path_factory.mktemp("qs") / "qs.db"), environ={})
    async with serving(settings) as gateway:
        yield gateway


@pytest.mark.parametrize("mode", MODES)
async def test_the_quickstart_serves_both_servers_to_both_eras_per_key(quickstart: Gateway, mode: str) -> None:
    async with quickstart.client("isk-quickstart-demo-key", mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert names == ["demo__add", "demo__echo", "demo__progress", "time__convert_time", "time__get_current_time"]
        assert (await client.call_tool("demo__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert not now.is_error
    async with quickstart.client("isk-quickstart-readonly-key", mode) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["demo__echo", "time__get_current_time"]
        with pytest.raises(MCPError, match="Unknown tool: demo__add"):
            await client.call_tool("demo__add", {"a": 1, "b": 2})
    records = await quickstart.audit(key="quickstart-readonly")
    assert [(r["target"], r["decision"]) for r in records][:1] == [("demo/add", "deny")]
