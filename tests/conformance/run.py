"""The official MCP conformance suite, straight at our test server and through the hub, check by check.

    python -m tests.conformance.run [--spec-version 2025-11-25 ...] [--update-gaps]

Starts the test server (tests/conformance/server.py), `isthmus serve` with that server as its one upstream
(`conformance`) and a virtual key allowed everything on it, and the key proxy (tests/conformance/keyproxy.py: the
suite cannot send a key). Then runs `conformance server --suite all --spec-version V` for each version against
`http://127.0.0.1:<server>/mcp` and against `http://127.0.0.1:<proxy>/mcp/conformance`, prints a table of both,
and saves every check of both runs to `.conformance/results.json`.

Exit status 1 when the test server fails any check directly, when the hub scores lower than the direct run on a
check that tests/conformance/known_gaps.yaml does not list, or when a listed gap passes now (the list must shrink).
`--update-gaps` rewrites the list from this run instead. The suite and Node 22 come from `make conformance`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Proc, Processes, StartError, free_port
from tests.conformance.compare import (
    direct_failures,
    dump_known_gaps,
    gaps,
    judge,
    load_known_gaps,
    read_messages,
    read_results,
)
from tests.conformance.report import VersionRun, details, results_document, table

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
INSTALL = REPO / ".conformance"
NODE = INSTALL / "node_modules" / ".bin" / "node"
SUITE_PACKAGE = INSTALL / "node_modules" / "@modelcontextprotocol" / "conformance"
KNOWN_GAPS = HERE / "known_gaps.yaml"
SPEC_VERSIONS = ("2025-11-25", "2026-07-28")
UPSTREAM = "conformance"
UPSTREAM_2026 = "conformance26"
"""The same test server, reached at 2026-07-28 (what `auto` picks), for the 2026-07-28 leg."""
KEY_NAME = "conformance"
GAPS_HEADER = """\
# Checks of the official MCP conformance suite that our test server passes directly but the hub does not yet:
# {version: {scenario: [check id]}}. Written by `python -m tests.conformance.run --update-gaps`.
# `make conformance` fails when a gap appears that is not listed here, and when a listed one passes (remove it).
"""


def suite_version() -> str:
    manifest = json.loads((SUITE_PACKAGE / "package.json").read_text())
    return f"{manifest['name']}@{manifest['version']}"


def hub_config(port: int, store: Path, upstream_url: str, key: str) -> dict[str, Any]:
    """One upstream, one key allowed all of it, nothing else; listening on loopback so Host checks apply."""
    return {
        "listen": f"127.0.0.1:{port}",
        "store": f"sqlite+aiosqlite:///{store}",
        "admin_key": secrets.token_hex(16),
        # `legacy` for 2025-11-25 clients: the test server's 2025 tools ask their client through the session's back
        # channel, which a 2026-07-28 upstream connection (what `auto` picks) does not have. 2026-07-28 clients go
        # to the same server over a 2026-07-28 connection: its tools answer with input rounds only there.
        "mcp_servers": {
            UPSTREAM: {"url": upstream_url, "protocol": "legacy"},
            UPSTREAM_2026: {"url": upstream_url, "protocol": "auto"},
        },
        "virtual_keys": [{"name": KEY_NAME, "value": key, "mcp": {UPSTREAM: ["*"], UPSTREAM_2026: ["*"]}}],
    }


def wait_upstream_ready(hub: Proc, timeout: float) -> None:
    """`/ready` lists the hub's upstreams: wait until ours is connected and listed."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(hub.url + "/ready", timeout=2) as answer:
                last = json.loads(answer.read())
        except urllib.error.HTTPError as exc:  # 503 while not ready; the body says why
            last = json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = repr(exc)
        servers = last.get("mcp", {}).get("servers", {}) if isinstance(last, dict) else {}
        if all(servers.get(name, {}).get("state") == "ready" for name in (UPSTREAM, UPSTREAM_2026)):
            return
        time.sleep(0.1)
    raise StartError(f"the hub did not connect to the test server within {timeout:g}s; /ready said {last}")


def start_stack(processes: Processes, work: Path, timeout: float) -> tuple[str, str]:
    """Test server, hub and key proxy; returns (direct URL, the key proxy's base URL)."""
    python = sys.executable
    server_port = free_port()
    server = processes.start(
        "server", [python, "-m", "tests.conformance.server", "--port", str(server_port)], port=server_port, cwd=REPO
    )
    server.wait_ready(timeout)
    direct = f"{server.url}/mcp"

    key = "isk-conformance-" + secrets.token_hex(16)
    config = work / "isthmus.yaml"
    hub_port = free_port()
    config.write_text(yaml.safe_dump(hub_config(hub_port, work / "isthmus.db", direct, key), sort_keys=False))
    isthmus = Path(python).parent / "isthmus"
    launcher = [str(isthmus)] if isthmus.exists() else [python, "-m", "isthmus.cli"]
    hub = processes.start(
        "hub", [*launcher, "serve", "--config", str(config), "--log-level", "warning"], port=hub_port, cwd=work
    )
    hub.wait_ready(timeout, "/health")
    wait_upstream_ready(hub, timeout)

    proxy_port = free_port()
    proxy = processes.start(
        "keyproxy",
        [python, "-m", "tests.conformance.keyproxy", "--port", str(proxy_port), "--target", hub.url],
        port=proxy_port,
        env={"CONFORMANCE_KEY": key},
        cwd=REPO,
    )
    proxy.wait_ready(timeout)
    return direct, proxy.url


def start_suite(url: str, version: str, output: Path, log: Path) -> subprocess.Popen[bytes]:
    """`conformance server` over every scenario (`--suite all`: pending and draft ones too) at one spec version."""
    shutil.rmtree(output, ignore_errors=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(NODE), str(SUITE_PACKAGE / "dist" / "index.js"), "server", "--url", url]
    argv += ["--suite", "all", "--spec-version", version, "--output-dir", str(output)]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=output.parent)


def hub_url(proxy: str, version: str) -> str:
    return f"{proxy}/mcp/{UPSTREAM_2026 if version == '2026-07-28' else UPSTREAM}"


def run_suites(direct: str, hub: str, versions: list[str], runs_dir: Path) -> list[VersionRun]:
    """Both targets at every version, one leg after another. Run all at once (four suites, the hub and the test
    server on two cores), timing-bound checks failed at random through the hub: `server-sse-polling`'s
    disconnect-resume gives the reconnected client 5 s for a result that crosses two reconnections."""
    for version in versions:
        for target, url in (("direct", direct), ("hub", hub_url(hub, version))):
            output, log = runs_dir / f"{version}-{target}", runs_dir / f"{version}-{target}.log"
            process = start_suite(url, version, output, log)
            try:
                # The suite exits 1 on any failing check; what failed is read from its results, not its exit status.
                if process.wait(timeout=600) not in (0, 1):
                    raise RuntimeError(f"the suite crashed on {version} {target}: see {log}")
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    results: list[VersionRun] = []
    for version in versions:
        direct_checks = read_results(runs_dir / f"{version}-direct")
        hub_checks = read_results(runs_dir / f"{version}-hub")
        if not direct_checks:
            raise RuntimeError(f"the suite wrote no results for {version}: see {runs_dir / f'{version}-direct.log'}")
        found = gaps(version, direct_checks, hub_checks)
        results.append(
            VersionRun(version, direct_checks, hub_checks, found, read_messages(runs_dir / f"{version}-hub"))
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec-version", action="append", choices=SPEC_VERSIONS, dest="versions")
    parser.add_argument("--output", type=Path, default=INSTALL / "results.json", help="machine-readable results")
    parser.add_argument("--known-gaps", type=Path, default=KNOWN_GAPS)
    parser.add_argument("--update-gaps", action="store_true", help="rewrite the known gaps from this run")
    parser.add_argument("--start-timeout", type=float, default=60)
    args = parser.parse_args(argv)
    versions: list[str] = args.versions or list(SPEC_VERSIONS)
    if not (NODE.exists() and SUITE_PACKAGE.exists()):
        print(f"the conformance suite is not installed in {INSTALL}: run `make conformance`", file=sys.stderr)
        return 2
    try:
        known = load_known_gaps(args.known_gaps)
    except ValueError as exc:  # before anything starts: a broken list fails at once
        print(exc, file=sys.stderr)
        return 2

    began = time.monotonic()
    logs = INSTALL / "logs"
    with tempfile.TemporaryDirectory(prefix="isthmus-conformance-") as work, Processes(logs) as processes:
        direct, hub = start_stack(processes, Path(work), args.start_timeout)
        runs = run_suites(direct, hub, versions, INSTALL / "runs")
    seconds = time.monotonic() - began

    found = [gap for run in runs for gap in run.gaps]
    if args.update_gaps:
        # Versions that did not run keep their entries.
        known = {key for key in known if key[0] not in versions} | {gap.key for gap in found}
        args.known_gaps.write_text(GAPS_HEADER + dump_known_gaps(known))
    verdict = judge(found, known, set(versions))
    problems = [problem for run in runs for problem in direct_failures(run.version, run.direct)]

    for run in runs:
        print(table(run, known), end="\n\n")
    for line in problems + details(runs, verdict):
        print(line)
    document = results_document(runs, verdict, problems, suite_version(), seconds)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    outcome = "ok" if document["ok"] else "FAILED"
    print(f"conformance {outcome} in {seconds:.0f}s ({document['suite']}); results in {args.output}")
    return 0 if document["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
