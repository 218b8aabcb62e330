"""The quickstart config serves `mcp-server-time` and the demo server through `/mcp`, to both eras, per key.

Until `examples/quickstart.yaml` carries the hub's block, the test applies it (the same text docs/mcp-hub.md gives).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp_hub.conftest import MODES, Gateway, serving
from toolpolicy.config import load_config_text

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[2]
QUICKSTART_SERVERS = """mcp_servers:
  time:
    command: mcp-server-time            # installed with Isthmus; found next to the gateway's Python
    args: ["--local-timezone", "UTC"]
  demo:
    command: .venv/bin/python           # the demo server ships with the hub: python -m mcp_hub.demo_server
    args: ["-m", "mcp_hub.demo_server"]
"""
QUICKSTART_KEYS = """    mcp: {time: ["*"], demo: ["*"]}
  - name: quickstart-readonly
    team: support
    value: ${ISTHMUS_READONLY_KEY:-isk-quickstart-readonly-key}
    mcp: {time: ["get_current_time"], demo: ["echo"]}
"""


def quickstart_text(store: Path) -> str:
    text = (ROOT / "examples" / "quickstart.yaml").read_text()
    if "mcp-server-time" not in text:
        assert "mcp_servers: {}\n" in text and text.endswith("    mcp: {}\n")
        text = text.replace("mcp_servers: {}\n", QUICKSTART_SERVERS).removesuffix("    mcp: {}\n") + QUICKSTART_KEYS
    return text.replace("sqlite+aiosqlite:///./isthmus.db", f"sqlite+aiosqlite:///{store}")


@pytest.fixture(scope="module")
async def quickstart(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    settings = load_config_text(quickstart_text(tmp_path_factory.mktemp("qs") / "qs.db"), environ={})
    cwd = Path.cwd()
    os.chdir(ROOT)  # the demo server's command is relative to the repository, as with `make run`
    try:
        async with serving(settings) as gateway:
            yield gateway
    finally:
        os.chdir(cwd)


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
