"""Does heavy request work stall the event loop? `/health` latency while `count_tokens` tokenises megabytes.

    .venv/bin/python -m bench.loop_stall                 # 5 MB, 3 rounds
    .venv/bin/python -m bench.loop_stall --mb 5 --rounds 5

Starts `isthmus serve` (one uvicorn worker, an `echo` provider, SQLite in a temporary directory) and, from this
process, sends `POST /v1/messages/count_tokens` with one message of `--mb` megabytes of English-like text, while a
second thread asks `GET /health` back to back on its own keep-alive connection. Prints the `/health` latency
percentiles measured while a count was in flight, and for comparison on an idle gateway. A gateway that tokenises
on its event loop answers `/health` only after the count is done: its p99 is about the count's own duration.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.gateway import serve_command
from bench.procs import LOOPBACK, Processes, free_port

WORDS = (
    "the gateway counts tokens for every request so budgets hold and rate limits stay fair while providers "
    "answer streams of text tools images and embeddings across regions with retries failover and audit"
).split()


def big_text(megabytes: float, seed: int = 1) -> str:
    rng = random.Random(seed)
    target = int(megabytes * 1024 * 1024)
    parts: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(WORDS) + (str(rng.randrange(1000)) if rng.random() < 0.1 else "")
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    return (
        f"n={len(samples)} p50 {statistics.median(samples):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms, "
        f"max {max(samples):.2f} ms"
    )


def health_probe(port: int, stop: threading.Event, samples: list[float]) -> None:
    """`GET /health` back to back until `stop`; each latency in ms."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            connection.request("GET", "/health")
            answer = connection.getresponse()
            answer.read()
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.002)
    finally:
        connection.close()


def count_tokens(port: int, key: str, body: bytes) -> tuple[int, float, int]:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=600)
    headers = {"content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01"}
    try:
        started = time.perf_counter()
        connection.request("POST", "/v1/messages/count_tokens", body=body, headers=headers)
        answer = connection.getresponse()
        payload = json.loads(answer.read() or b"{}")
        return answer.status, (time.perf_counter() - started) * 1000, int(payload.get("input_tokens", -1))
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of the counted text, in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="count_tokens requests, one after the other")
    args = parser.parse_args()
    text = big_text(args.mb)
    body = json.dumps({"model": "echo/echo-1", "messages": [{"role": "user", "content": text}]}).encode()
    key = "isk-stall-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp, Processes(Path(tmp) / "logs") as processes:
        port = free_port()
        config = {
            "listen": f"{LOOPBACK}:{port}",
            "store": f"sqlite+aiosqlite:///{tmp}/isthmus.db",
            "admin_key": secrets.token_hex(16),
            "providers": {"echo": {"kind": "echo"}},
            "virtual_keys": [{"name": "stall", "value": key, "models": ["*"]}],
        }
        path = Path(tmp) / "isthmus.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = processes.start("isthmus", serve_command(path), port=port, cwd=Path(tmp))
        proc.wait_ready(60, "/health")
        # Warm the encoding (loaded once per process) with a small count, so the rounds measure counting only.
        small = json.dumps({"model": "echo/echo-1", "messages": [{"role": "user", "content": "hi"}]}).encode()
        count_tokens(port, key, small)

        idle: list[float] = []
        stop = threading.Event()
        probe = threading.Thread(target=health_probe, args=(port, stop, idle))
        probe.start()
        time.sleep(1.0)
        stop.set()
        probe.join()

        busy: list[float] = []
        for round_number in range(1, args.rounds + 1):
            stop = threading.Event()
            samples: list[float] = []
            probe = threading.Thread(target=health_probe, args=(port, stop, samples))
            probe.start()
            status, elapsed, counted = count_tokens(port, key, body)
            stop.set()
            probe.join()
            busy += samples
            print(
                f"round {round_number}: count_tokens {len(body) / 1e6:.1f} MB -> {status}, {counted:,} tokens "
                f"in {elapsed:.0f} ms; /health during it: {summary(samples)}"
            )
        print(f"/health idle:             {summary(idle)}")
        print(f"/health during the counts: {summary(busy)}")


if __name__ == "__main__":
    main()
