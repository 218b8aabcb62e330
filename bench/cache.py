"""What the response cache costs and saves: an exact hit's latency, and a miss's extra cost against the cache off.

    .venv/bin/python -m bench.cache                      # 2,000 requests per series
    .venv/bin/python -m bench.cache --requests 5000

Starts two `isthmus serve` processes (one uvicorn worker each, the in-process `echo` provider, SQLite in a temporary
directory): one without a `cache:` block, one with `cache: {ttl: 1h}`. From this process, on one keep-alive
connection per gateway, it sends the series interleaved (A, B, A, B, ...) so that the machine's noise falls on both:

- `/health` on each gateway: the floor of one round trip through HTTP and the server;
- misses: a chat completion with a new question each time, to the gateway without a cache and to the one with it
  (where each is looked up, missed, and stored);
- hits: one question, stored once, then asked again and again of the cached gateway; and the same question of the
  gateway without a cache (which calls the provider every time).

It prints each series' p50 and p90 (ms, round trip as the client sees it), and the two figures the targets judge:
a hit's p50 less the `/health` p50 (what answering from the cache adds to a bare round trip; target ≤ 1 ms), and
the miss p50 with the cache less the miss p50 without it (target ≤ 0.3 ms). Also the search figures of the semantic
index (numpy brute force and usearch HNSW, 1536 dimensions) when `--vectors` is given.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.gateway import serve_command
from bench.procs import LOOPBACK, Processes, free_port


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def line(name: str, samples: list[float]) -> str:
    p50, p90 = statistics.median(samples), percentile(samples, 0.9)
    return f"{name:<34} n={len(samples):>5}  p50 {p50:7.3f} ms  p90 {p90:7.3f} ms"


class Client:
    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}

    def get(self, path: str) -> float:
        started = time.perf_counter()
        self.connection.request("GET", path)
        answer = self.connection.getresponse()
        answer.read()
        return (time.perf_counter() - started) * 1000

    def chat(self, text: str, expect: str | None = None) -> float:
        body = json.dumps({"model": "echo/echo-1", "messages": [{"role": "user", "content": text}], "max_tokens": 16})
        started = time.perf_counter()
        self.connection.request("POST", "/v1/chat/completions", body=body, headers=self.headers)
        answer = self.connection.getresponse()
        answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            raise RuntimeError(f"chat answered {answer.status}")
        if expect is not None and answer.getheader("x-isthmus-cache") != expect:
            raise RuntimeError(f"expected x-isthmus-cache {expect}, got {answer.getheader('x-isthmus-cache')}")
        return elapsed


def start(processes: Processes, tmp: Path, name: str, key: str, cache: dict[str, Any] | None) -> int:
    port = free_port()
    config: dict[str, Any] = {
        "listen": f"{LOOPBACK}:{port}",
        "store": f"sqlite+aiosqlite:///{tmp}/{name}.db",
        "admin_key": secrets.token_hex(16),
        "providers": {"echo": {"kind": "echo"}},
        "virtual_keys": [{"name": "bench", "value": key, "models": ["*"]}],
    }
    if cache is not None:
        config["cache"] = cache
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = processes.start(name, serve_command(path), port=port, cwd=tmp)
    proc.wait_ready(60, "/health")
    return port


def vector_figures(sizes: list[int]) -> None:
    import numpy as np
    from usearch.index import Index

    rng = np.random.default_rng(1)
    for size in sizes:
        vectors = rng.standard_normal((size, 1536), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = Index(ndim=1536, metric="ip", dtype="f32")
        index.add(np.arange(size, dtype=np.uint64), vectors)
        query = rng.standard_normal(1536).astype(np.float32)
        brute, hnsw = [], []
        for _ in range(50):
            started = time.perf_counter()
            int(np.argmax(vectors @ query))
            brute.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            index.search(query, 1)
            hnsw.append((time.perf_counter() - started) * 1000)
        print(line(f"vectors {size:,}: numpy brute force", brute))
        print(line(f"vectors {size:,}: usearch HNSW", hnsw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per series")
    parser.add_argument(
        "--vectors", default="", help="comma-separated index sizes to time searches at, e.g. 1000,10000"
    )
    args = parser.parse_args()
    key = "isk-cache-bench-" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp, Processes(Path(tmp) / "logs") as processes:
        off = Client(start(processes, Path(tmp), "cache-off", key, None), key)
        on = Client(start(processes, Path(tmp), "cache-on", key, {"ttl": "1h"}), key)
        for client in (off, on):  # warm: tiktoken's encoding, the first store writes
            for number in range(50):
                client.chat(f"warm up {number}")
        on.chat("the repeated question", expect="miss")
        series: dict[str, list[float]] = {name: [] for name in ("health", "miss off", "miss on", "hit", "same off")}
        run = secrets.token_hex(4)
        for number in range(args.requests):
            series["health"].append(on.get("/health"))
            question = f"question {run} {number}"
            series["miss off"].append(off.chat(question))
            series["miss on"].append(on.chat(question, expect="miss"))
            series["hit"].append(on.chat("the repeated question", expect="hit"))
            series["same off"].append(off.chat("the repeated question"))
        print(line("/health (round-trip floor)", series["health"]))
        print(line("miss, cache off", series["miss off"]))
        print(line("miss, cache on", series["miss on"]))
        print(line("same question, cache off", series["same off"]))
        print(line("exact hit, cache on", series["hit"]))
        median = {name: statistics.median(samples) for name, samples in series.items()}
        print(f"a hit over the /health floor:         {median['hit'] - median['health']:+.3f} ms (target <= 1 ms)")
        print(
            f"a miss with the cache over without:   {median['miss on'] - median['miss off']:+.3f} ms (target <= 0.3 ms)"
        )
        print(f"a hit against the provider (echo):    {median['hit'] - median['same off']:+.3f} ms")
    if args.vectors:
        vector_figures([int(size) for size in args.vectors.split(",")])


if __name__ == "__main__":
    main()
