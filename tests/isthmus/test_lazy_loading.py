"""What a started gateway keeps resident: heavy modules and data a request does not need are loaded when first used.

Each check runs in a fresh interpreter (a subprocess), since this test session has long since imported everything.
A tiktoken encoding costs about 85 MiB resident and Alembic about 11 MiB; neither is needed to serve a request
when the provider reports usage and the store is already migrated. numpy and usearch (about 30 MiB) serve only the
semantic cache. redis-py (9 MiB), google-auth (7 MiB), pydantic-monty (5 MiB), joserfc (3 MiB) and botocore serve
only `redis:`, a vertex provider, Code Mode, OAuth and a bedrock provider: a gateway configured without them does not
load them, and one configured with them loads them as it is built, so a broken install fails at start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from isthmus.migrate import in_memory
from toolpolicy.store.engine import HEAD_REVISION, MIGRATIONS, Store

REPO = Path(__file__).resolve().parents[2]

STARTED_GATEWAY = """
import asyncio, json, sys
from isthmus.app import create_app
from llm_proxy import tokens
from toolpolicy.settings import GatewaySettings

async def main() -> None:
    app = create_app(GatewaySettings(store=sys.argv[1]))
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list = []
    async def send(message) -> None:
        sent.append(message["type"])
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": kind})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, inbox.get, send)
    print(json.dumps({
        "lifespan": sent,
        "alembic": sorted(name for name in sys.modules if name.split(".")[0] == "alembic")[:3],
        "encodings": sorted(tokens._loaded),
        "vectors": sorted(name for name in ("numpy", "usearch") if name in sys.modules),
    }))

asyncio.run(main())
"""


def _start_and_stop(store_url: str) -> dict[str, list[str]]:
    return _in_a_fresh_interpreter(STARTED_GATEWAY, store_url)


def _in_a_fresh_interpreter(script: str, *args: str) -> dict[str, list[str]]:
    """What `script` prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_a_gateway_on_a_migrated_store_loads_neither_alembic_nor_an_encoding_nor_vectors(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'isthmus.db'}"

    async def migrate() -> None:
        store = Store.open(url)
        await store.migrate()
        await store.close()

    asyncio.run(migrate())
    loaded = _start_and_stop(url)
    assert loaded["lifespan"] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert loaded["alembic"] == []
    assert loaded["encodings"] == []
    assert loaded["vectors"] == []


def test_a_fresh_store_is_still_migrated_at_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'isthmus.db'}"
    loaded = _start_and_stop(url)
    assert loaded["lifespan"] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert loaded["alembic"] != []

    async def revision() -> str | None:
        store = Store.open(url)
        try:
            return await store.revision()
        finally:
            await store.close()

    assert asyncio.run(revision()) == HEAD_REVISION


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


OPTIONAL = ("alembic", "redis", "google.auth", "pydantic_monty", "joserfc", "botocore", "numpy", "usearch", "authlib")
"""Heavy modules that only a configured feature (or migrating the store) needs."""

SERVED_GATEWAY = """
import asyncio, json, sys
from isthmus.app import create_app
from isthmus.migrate import migrate_apart
from toolpolicy.config import load_config

settings = load_config(sys.argv[1], environ={})
migrate_apart(settings.store)  # as `isthmus serve` does before building the app
app = create_app(settings)
optional = json.loads(sys.argv[2])

async def main() -> None:
    inbox: asyncio.Queue = asyncio.Queue()
    sent: list = []
    async def send(message) -> None:
        sent.append(message["type"])
    if sys.argv[3] == "start":
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": kind})
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
    loaded = [name for name in optional if name in sys.modules]
    print(json.dumps({"lifespan": sent, "loaded": loaded}))

asyncio.run(main())
"""

PLAIN: dict[str, object] = {
    "providers": {"up": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "keys": [{"value": "sk-x"}]}},
    "mcp_servers": {"tools": {"url": "http://127.0.0.1:9/mcp"}},
    "mcp": {"connect_timeout": 1},
    "teams": [{"name": "t"}],
    "virtual_keys": [
        {"name": "k", "team": "t", "value": "isk-lazy-0123456789", "models": ["up/*"], "mcp": {"tools": ["*"]}}
    ],
}


def _serve(tmp_path: Path, config: dict[str, object], phase: str) -> dict[str, list[str]]:
    path = tmp_path / "isthmus.yaml"
    path.write_text(json.dumps({"store": f"sqlite+aiosqlite:///{tmp_path / 'isthmus.db'}", **config}))
    return _in_a_fresh_interpreter(SERVED_GATEWAY, str(path), json.dumps(OPTIONAL), phase)


def test_a_plain_gateway_on_a_fresh_store_serves_without_any_optional_module(tmp_path: Path) -> None:
    result = _serve(tmp_path, PLAIN, "start")
    assert result["lifespan"] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert result["loaded"] == []  # the store was migrated by a child process: Alembic is not here either


def test_configured_features_load_their_modules_as_the_gateway_is_built(tmp_path: Path) -> None:
    providers = {**PLAIN["providers"], "gcp": {"kind": "vertex", "project": "p"}}  # type: ignore[dict-item]
    servers = {"tools": {"url": "http://127.0.0.1:9/mcp", "code_mode": True}}
    config = {**PLAIN, "providers": providers, "mcp_servers": servers, "redis": "redis://127.0.0.1:9/0"}
    result = _serve(tmp_path, config, "build")
    assert {"redis", "google.auth", "pydantic_monty"} <= set(result["loaded"])


def test_a_store_in_memory_is_left_to_the_process_that_uses_it() -> None:
    assert in_memory("sqlite+aiosqlite://")
    assert in_memory("sqlite+aiosqlite:///:memory:")
    assert in_memory("sqlite+aiosqlite:///file:shared?mode=memory&cache=shared&uri=true")
    assert not in_memory("sqlite+aiosqlite:////var/lib/isthmus/isthmus.db")
    assert not in_memory("postgresql+asyncpg://isthmus@db/isthmus")
