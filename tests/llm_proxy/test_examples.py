"""The agent examples run as written against the quickstart's LLM config, with no provider key set."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.llm_proxy.conftest import Gateway, serve_gateway
from toolpolicy.config import load_config_text

pytestmark = pytest.mark.anyio
EXAMPLES = Path(__file__).parents[2] / "examples" / "agents"
QUICKSTART_KEY = "isk-quickstart-demo-key"

# The LLM part of examples/quickstart.yaml, as docs/llm-proxy.md gives it.
QUICKSTART_LLM = """
providers:
  echo:
    kind: echo
  openai:
    kind: openai
    keys: [{value: "${OPENAI_API_KEY:-}"}]
    models: [gpt-4o-mini, text-embedding-3-small]
  anthropic:
    kind: anthropic
    keys: [{value: "${ANTHROPIC_API_KEY:-}"}]
    models: [claude-haiku-4-5]
models:
  fast:
    targets: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5, echo/echo-1]
virtual_keys:
  - name: quickstart
    value: ${ISTHMUS_QUICKSTART_KEY:-isk-quickstart-demo-key}
    models: ["*"]
"""


@pytest.fixture
async def quickstart(tmp_path: Path) -> AsyncIterator[Gateway]:
    text = f"store: sqlite+aiosqlite:///{tmp_path / 'quickstart.db'}\n{QUICKSTART_LLM}"
    async with serve_gateway(load_config_text(text, environ={})) as started:
        yield started


@pytest.mark.parametrize("script", ["openai_agent.py", "anthropic_agent.py"])
async def test_the_agent_example_runs_its_tool_loop_against_the_quickstart(quickstart: Gateway, script: str) -> None:
    env = {**os.environ, "ISTHMUS_URL": quickstart.url, "ISTHMUS_KEY": QUICKSTART_KEY}
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, str(EXAMPLES / script), "--model", "fast", "--require-tool", "What time is it?"],
            env=env,
            check=False,
        )
    output = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert "[turn 1: answered by echo/echo-1]" in output and "[turn 2: answered by echo/echo-1]" in output
    assert "[tool current_time({}) -> " in output
    assert output.strip().splitlines()[-1].startswith("20")  # the loop ends on the tool's ISO timestamp
