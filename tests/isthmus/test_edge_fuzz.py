"""Fuzzing `/v1/authorize` and the admin API with hostile JSON: every answer is under 500 in the gateway's error
envelope, a refused create or update leaves nothing behind, and the gateway keeps serving after each one.

Both run on SQLite and on the real PostgreSQL (whose JSON columns refuse what SQLite's accept, e.g. `\\u0000`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import given, strategies as st

from tests.isthmus.conftest import BOT_KEY, admin
from tests.json_fuzz_support import FUZZ, WEIRD_TEXT, bodies, plain_values, shaped
from toolpolicy.runtime import Governance

pytestmark = pytest.mark.anyio
Started = tuple[Governance, httpx2.AsyncClient]
BOT = {"authorization": f"Bearer {BOT_KEY}"}

NAME = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), WEIRD_TEXT)
NUMBER = st.one_of(
    st.floats(min_value=0.01, max_value=1000), st.integers(min_value=-5, max_value=2**70), plain_values()
)
BUDGET = shaped(
    {"max_usd": NUMBER}, {"period": st.sampled_from(["1h", "1d", "1w", "1M", "2d"]), "rolling": plain_values()}
)
RATE = st.one_of(st.sampled_from(["10/1m", "5/s", "0/1h", "1/999999999d", "99999999999999999/1m"]), st.text(max_size=8))
KEY_BODY = shaped(
    {"name": NAME},
    {
        "team": st.sampled_from(["support", "nope"]),
        "models": st.lists(st.one_of(st.sampled_from(["openai/*", "*"]), st.text(max_size=8)), max_size=2),
        "mcp": st.one_of(st.just({"docs": ["*"]}), plain_values()),
        "budgets": st.lists(BUDGET, max_size=2),
        "provider_budgets": st.dictionaries(st.text(max_size=6), st.lists(BUDGET, max_size=1), max_size=1),
        "rate_limit": shaped({}, {"requests": RATE, "tokens": RATE}),
        "mcp_rate_limit": shaped({}, {"calls": RATE}),
        "expires_at": st.one_of(st.sampled_from(["2999-01-01T00:00:00Z", "yesterday", "9999-99-99"]), plain_values()),
        "metadata": st.dictionaries(st.text(max_size=6), plain_values(), max_size=3),
        "active": plain_values(),
        "code_mode": plain_values(),
    },
)
TEAM_BODY = shaped(
    {"name": NAME},
    {
        "customer": st.sampled_from(["acme", "nope"]),
        "budgets": st.lists(BUDGET, max_size=2),
        "metadata": st.dictionaries(st.text(max_size=6), plain_values(), max_size=3),
    },
)
AUTHORIZE_BODY = shaped(
    {},
    {
        "model": st.one_of(st.sampled_from(["openai/gpt-4o-mini", "openai/gpt-4o"]), WEIRD_TEXT),
        "server": st.one_of(st.just("docs"), WEIRD_TEXT),
        "tool": st.one_of(st.just("search_pages"), WEIRD_TEXT),
    },
)


def assert_error_envelope(response: httpx2.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str) and isinstance(error["code"], str)


async def still_serving(client: httpx2.AsyncClient) -> None:
    allowed = await client.post("/v1/authorize", json={"model": "openai/gpt-4o-mini"}, headers=BOT)
    assert allowed.status_code == 200 and allowed.json()["allowed"] is True
    assert (await client.get("/admin/keys/bot", headers=admin())).status_code == 200


def named(body: bytes) -> str | None:
    """The entity name a create would have used, if the body has a plain one (to check nothing was left)."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name.isascii() and name.isalnum() else None


@FUZZ
@given(body=bodies(AUTHORIZE_BODY))
async def test_the_decision_api_answers_hostile_json_in_its_envelope(governance: Started, body: bytes) -> None:
    _, client = governance
    response = await client.post("/v1/authorize", content=body, headers=BOT)
    assert_error_envelope(response)
    assert all(value.isascii() and value.isprintable() for value in response.headers.values())
    await still_serving(client)


@FUZZ
@given(body=bodies(KEY_BODY), collection=st.sampled_from(["keys", "keys", "teams", "customers"]))
async def test_admin_creates_answer_hostile_json_and_leave_nothing_half_written(
    governance: Started, body: bytes, collection: str
) -> None:
    _, client = governance
    response = await client.post(f"/admin/{collection}", content=body, headers=admin())
    assert_error_envelope(response)
    name = named(body)
    if response.status_code == 201:
        deleted = await client.delete(f"/admin/{collection}/{response.json()['name']}", headers=admin())
        assert deleted.status_code == 204
    elif name is not None and response.status_code != 409:
        assert (await client.get(f"/admin/{collection}/{name}", headers=admin())).status_code == 404
    await still_serving(client)


@FUZZ
@given(body=st.one_of(bodies(KEY_BODY), bodies(TEAM_BODY)))
async def test_admin_updates_answer_hostile_json_and_keep_the_entity_whole(governance: Started, body: bytes) -> None:
    _, client = governance
    before = (await client.get("/admin/keys/bot", headers=admin())).json()
    response = await client.patch("/admin/keys/bot", content=body.replace(b'"name"', b'"_name"'), headers=admin())
    assert_error_envelope(response)
    if response.status_code >= 400:
        assert (await client.get("/admin/keys/bot", headers=admin())).json() == before
    else:
        restore = {field: before[field] for field in ("team", "customer", "models", "mcp", "budgets", "metadata")}
        restore |= {"provider_budgets": {}, "rate_limit": None, "provider_rate_limits": {}, "mcp_rate_limit": None}
        restore |= {"active": True, "expires_at": None, "code_mode": None}
        assert (await client.patch("/admin/keys/bot", json=restore, headers=admin())).status_code == 200
    await still_serving(client)
