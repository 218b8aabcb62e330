"""What a started gateway keeps resident: heavy modules and data a request does not need are loaded when first used.

Each check runs in a fresh interpreter (a subprocess), since this test session has long since imported everything.
A tiktoken encoding costs about 85 MiB resident and Alembic about 11 MiB; neither is needed to serve a request
when the provider reports usage and the store is already migrated. numpy and usearch (about 30 MiB) serve only the
semantic cache.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

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
    done = subprocess.run(
        [sys.executable, "-c", STARTED_GATEWAY, store_url],
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
