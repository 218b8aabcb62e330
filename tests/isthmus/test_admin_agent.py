"""A key's `agent` block through the admin API: created, shown, patched, refused when invalid, and resolved into the
key's Principal (stored with the key's `mcp` allowlist, which never shows it)."""

from __future__ import annotations

import httpx2
import pytest

from tests.isthmus.conftest import admin
from toolpolicy.runtime import Governance
from toolpolicy.types import AgentPolicy

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]
AGENT = {"tools": ["docs__search_*"], "max_steps": 5, "parallel": False}


async def test_a_keys_agent_block_is_created_shown_patched_and_resolved(governance: Started) -> None:
    gateway, client = governance
    created = await client.post(
        "/admin/keys", json={"name": "agent-bot", "mcp": {"docs": ["*"]}, "agent": AGENT}, headers=admin()
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["agent"] == AGENT
    assert body["mcp"] == {"docs": ["*"]}
    read = (await client.get("/admin/keys/agent-bot", headers=admin())).json()
    assert (read["agent"], read["mcp"]) == (AGENT, {"docs": ["*"]})

    principal = await gateway.keys.resolve(body["key"])
    assert principal.agent == AgentPolicy(tools=principal.agent.tools, max_steps=5, parallel=False)  # type: ignore[union-attr]
    assert principal.agent is not None and principal.agent.tools.matches("docs__search_pages")
    assert set(principal.mcp) == {"docs"}

    patched = await client.patch("/admin/keys/agent-bot", json={"mcp": {"docs": ["search_*"]}}, headers=admin())
    assert (patched.json()["agent"], patched.json()["mcp"]) == (AGENT, {"docs": ["search_*"]})
    off = await client.patch("/admin/keys/agent-bot", json={"agent": None}, headers=admin())
    assert off.json()["agent"] is None
    gateway.keys.invalidate()
    assert (await gateway.keys.resolve(body["key"])).agent is None


async def test_a_key_without_agent_shows_null(governance: Started) -> None:
    _, client = governance
    assert (await client.get("/admin/keys/bot", headers=admin())).json()["agent"] is None


@pytest.mark.parametrize(
    ("agent", "param"),
    [
        ({"tools": ["docs__*"], "max_steps": 0}, "agent.max_steps"),
        ({"tools": ["docs__*"], "max_steps": 65}, "agent.max_steps"),
        ({"tools": []}, "agent.tools"),
        ({"tools": ["docs search"]}, "agent.tools[0]"),
        ({"tools": ["docs__*"], "parallel": "sometimes"}, "agent.parallel"),
        ({"tools": ["docs__*"], "steps": 3}, "agent.steps"),
    ],
)
async def test_an_invalid_agent_block_is_a_400_naming_the_field(
    governance: Started, agent: dict[str, object], param: str
) -> None:
    _, client = governance
    response = await client.post("/admin/keys", json={"name": "bad-agent", "agent": agent}, headers=admin())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert (await client.get("/admin/keys/bad-agent", headers=admin())).status_code == 404
