"""deploy/compose.yaml and deploy/nginx.conf, checked as data: no Compose v2 CLI or daemon is on this machine, so the
checks are the structure Compose needs and the properties the deployment depends on. The gateways' config is
validated by the gateway's own loader."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from toolpolicy.config import load_config

DEPLOY = Path(__file__).parents[2] / "deploy"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_two_gateways_postgres_redis_and_nginx() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "gateway-1", "gateway-2", "nginx"}
    for name in ("gateway-1", "gateway-2"):
        gateway = services[name]
        assert gateway["build"]["context"] == ".." and (DEPLOY / ".." / gateway["build"]["dockerfile"]).is_file()
        assert gateway["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert "./isthmus.yaml:/etc/isthmus/config.yaml:ro" in gateway["volumes"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["nginx"]["volumes"] == ["./nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_every_file_a_service_mounts_exists() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), source


def test_the_gateways_stop_grace_covers_their_drain() -> None:
    config = load_config(DEPLOY / "isthmus.yaml", environ={"ISTHMUS_ADMIN_KEY": "admin"})
    grace = int(compose()["services"]["gateway-1"]["stop_grace_period"].rstrip("s"))
    assert grace > config.server.drain_timeout + 2 * config.server.stop_timeout


def test_the_gateway_config_uses_the_shared_store_and_redis() -> None:
    config = load_config(DEPLOY / "isthmus.yaml", environ={"ISTHMUS_ADMIN_KEY": "admin"})
    assert config.store.startswith("postgresql+asyncpg://") and "@postgres:5432/" in config.store
    assert config.redis == "redis://redis:6379/0" and config.listen == "0.0.0.0:8080"


def test_nginx_balances_round_robin_over_both_gateways_with_no_stickiness() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    upstream = re.search(r"upstream isthmus \{(.*?)\}", code, re.S)
    assert upstream is not None
    servers = re.findall(r"server (\S+?)[ ;]", upstream.group(1))
    assert servers == ["gateway-1:8080", "gateway-2:8080"]
    for sticky in ("ip_hash", "hash ", "sticky", "least_conn", "random"):
        assert sticky not in upstream.group(1)
    assert "proxy_pass http://isthmus;" in code and "proxy_buffering off;" in code  # streams pass through
    assert code.count("{") == code.count("}")
    published = compose()["services"]["nginx"]["ports"][0].rsplit(":", 1)[1]
    assert f"listen {published};" in code
