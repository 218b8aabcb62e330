"""What the response cache costs and saves: an exact and a semantic hit's latency, and a miss's extra cost.

    .venv/bin/python -m bench.cache                      # 2,000 requests per series
    .venv/bin/python -m bench.cache --requests 5000

`make bench` runs the same scenario (`measure`, 1,000 requests per series unless `--cache-requests` says otherwise)
and judges issue 16's targets in its report.

Starts `isthmus serve` processes (one uvicorn worker each, the in-process `echo` provider, SQLite in a temporary
directory): one without a `cache:` block, one with `cache: {ttl: 1h}`. From this process, on one keep-alive
connection per gateway, it sends the series interleaved (A, B, A, B, ...) so that the machine's noise falls on both:

- `/health` on each gateway: the floor of one round trip through HTTP and the server;
- misses: a chat completion with a new question each time, to the gateway without a cache and to the one with it
  (where each is looked up, missed, and stored);
- hits: one question, stored once, then asked again and again of the cached gateway; and the same question of the
  gateway without a cache (which calls the provider every time).

A third gateway has a semantic cache (`cache: {ttl: 1h, semantic: {embedding_model: embed/bag-of-words, threshold:
0.9}}`) whose embeddings come from `bench.mock_embed` (a hashed bag of words: paraphrases land near), started as
its own process. One question is stored there, then each round asks a new paraphrase of it (its words shuffled,
one of its 13 words replaced by a new one: similarity 0.90 to 0.94), which must answer `x-isthmus-cache:
semantic-hit` (any other answer counts as an error); interleaved with those, `/health` on that gateway and one
`/v1/embeddings` call of the same paraphrase straight to the mock, from this process.

It prints each series' p50 and p90 (ms, round trip as the client sees it), and the figures the targets judge:
a hit's p50 less the `/health` p50 (what answering from the cache adds to a bare round trip; target ≤ 1 ms),
the miss p50 with the cache less the miss p50 without it (target ≤ 0.3 ms), and a semantic hit's p50 less its
gateway's `/health` p50 and the embedding call's p50 (target ≤ 2 ms plus the embedding call). Also the search
figures of the semantic index (numpy brute force and usearch HNSW, 1536 dimensions) when `--vectors` is given.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.gateway import serve_command
from bench.procs import LOOPBACK, Processes, free_port, fresh_store
from bench.results_model import CacheFigures


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def line(name: str, figures: dict[str, float]) -> str:
    return f"{name:<34} n={int(figures['n']):>5}  p50 {figures['p50']:7.3f} ms  p90 {figures['p90']:7.3f} ms"


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50": statistics.median(samples), "p90": percentile(samples, 0.9)}


class Client:
    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
        self.headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}

    def reconnect(self) -> None:
        """A new connection, opened now: the server closes one left idle past its keep-alive timeout (5 s), which
        the warm-up of the other gateways can take on a loaded machine."""
        self.connection.close()
        self.get("/health")

    def get(self, path: str) -> float:
        started = time.perf_counter()
        self.connection.request("GET", path)
        answer = self.connection.getresponse()
        answer.read()
        return (time.perf_counter() - started) * 1000

    def post(self, path: str, payload: dict[str, Any]) -> tuple[float, http.client.HTTPResponse]:
        body = json.dumps(payload)
        started = time.perf_counter()
        self.connection.request("POST", path, body=body, headers=self.headers)
        answer = self.connection.getresponse()
        answer.read()
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            raise RuntimeError(f"{path} answered {answer.status}")
        return elapsed, answer

    def ask(self, text: str) -> tuple[float, str | None]:
        """A chat completion's round trip (ms) and its `x-isthmus-cache` header."""
        payload = {"model": "echo/echo-1", "messages": [{"role": "user", "content": text}], "max_tokens": 16}
        elapsed, answer = self.post("/v1/chat/completions", payload)
        return elapsed, answer.getheader("x-isthmus-cache")

    def chat(self, text: str, expect: str | None = None) -> float:
        elapsed, outcome = self.ask(text)
        if expect is not None and outcome != expect:
            raise RuntimeError(f"expected x-isthmus-cache {expect}, got {outcome}")
        return elapsed


STORED = "how do i reset the password of my account on the web site"
EMBEDDING_MODEL = "embed/bag-of-words"


def paraphrase(number: int, run: str) -> str:
    """`STORED` with its words shuffled and one of them replaced by a word no other question has."""
    words = STORED.split()
    shuffler = random.Random(number)
    words[shuffler.randrange(len(words))] = f"w{run}x{number}"
    shuffler.shuffle(words)
    return " ".join(words)


def start(
    processes: Processes,
    tmp: Path,
    name: str,
    key: str,
    cache: dict[str, Any] | None,
    providers: dict[str, Any] | None = None,
) -> int:
    port = free_port()
    config: dict[str, Any] = {
        "listen": f"{LOOPBACK}:{port}",
        "store": f"sqlite+aiosqlite:///{fresh_store(tmp / f'{name}.db')}",
        "admin_key": secrets.token_hex(16),
        "providers": {"echo": {"kind": "echo"}, **(providers or {})},
        "virtual_keys": [{"name": "bench", "value": key, "models": ["*"]}],
    }
    if cache is not None:
        config["cache"] = cache
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = processes.start(name, serve_command(path), port=port, cwd=tmp)
    proc.wait_ready(60, "/health")
    return port


def start_embedder(processes: Processes) -> int:
    port = free_port()
    proc = processes.start("mock-embed", [sys.executable, "-m", "bench.mock_embed", "--port", str(port)], port=port)
    proc.wait_ready(30)
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
        print(line(f"vectors {size:,}: numpy brute force", summary(brute)))
        print(line(f"vectors {size:,}: usearch HNSW", summary(hnsw)))


SERIES = {
    "health": "/health (round-trip floor)",
    "miss off": "miss, cache off",
    "miss on": "miss, cache on",
    "same off": "same question, cache off",
    "hit": "exact hit, cache on",
    "health sem": "/health, semantic gateway",
    "embedding": "embedding call, straight to mock",
    "semantic hit": "semantic hit",
}
"""Each series' name and its label in the printout and the report."""


def _series(
    processes: Processes, tmp: Path, requests: int, log: Callable[[str], None]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    key = "isk-cache-bench-" + secrets.token_hex(8)
    off = Client(start(processes, tmp, "cache-off", key, None), key)
    on = Client(start(processes, tmp, "cache-on", key, {"ttl": "1h"}), key)
    embed_port = start_embedder(processes)
    embedder = Client(embed_port, "sk-mock")
    semantic_cache = {"ttl": "1h", "semantic": {"embedding_model": EMBEDDING_MODEL, "threshold": 0.9}}
    upstream = {"kind": "openai", "base_url": f"http://{LOOPBACK}:{embed_port}/v1", "keys": [{"value": "sk-mock"}]}
    semantic = Client(start(processes, tmp, "cache-semantic", key, semantic_cache, {"embed": upstream}), key)
    log("  cache: gateways started, warming up")
    for client in (off, on, semantic):  # warm: tiktoken's encoding, the first store writes
        for number in range(50):
            client.chat(f"warm up {number}")
    on.chat("the repeated question", expect="miss")
    semantic.chat(STORED, expect="miss")
    run = secrets.token_hex(4)
    for number in range(50):  # warm the semantic path; the stored entry's vector is indexed by now
        semantic.ask(paraphrase(number, "warm" + run))
    for client in (off, on, semantic, embedder):
        client.reconnect()
    series: dict[str, list[float]] = {name: [] for name in SERIES}
    misses: dict[str, int] = {}
    for number in range(requests):
        # The hit comes first on its gateway: right behind a miss it would wait for that miss's store write
        # (SQLite, off the request path but on the same event loop); the requests to the other processes give
        # the write its time.
        series["health"].append(on.get("/health"))
        series["hit"].append(on.chat("the repeated question", expect="hit"))
        question = f"question {run} {number}"
        series["miss off"].append(off.chat(question))
        series["miss on"].append(on.chat(question, expect="miss"))
        series["same off"].append(off.chat("the repeated question"))
        series["health sem"].append(semantic.get("/health"))
        text = paraphrase(number, run)
        series["embedding"].append(embedder.post("/v1/embeddings", {"model": "bag-of-words", "input": text})[0])
        elapsed, outcome = semantic.ask(text)
        if outcome == "semantic-hit":
            series["semantic hit"].append(elapsed)
        else:
            misses[str(outcome)] = misses.get(str(outcome), 0) + 1
    for client in (off, on, semantic, embedder):
        client.connection.close()
    return series, misses


def measure(
    processes: Processes, tmp: Path, requests: int, log: Callable[[str], None] = lambda message: None
) -> CacheFigures:
    """Start the three gateways and the embedding mock, send `requests` rounds of every series, interleaved, and
    stop them all (so that `make bench` can go on with the cores free)."""
    before = list(processes.started)
    try:
        series, misses = _series(processes, tmp, requests, log)
    finally:
        for proc in [proc for proc in processes.started if proc not in before]:
            processes.stop(proc)
    if not series["semantic hit"]:
        raise RuntimeError(f"no paraphrase answered semantic-hit: {misses}")
    return CacheFigures({name: summary(samples) for name, samples in series.items()}, misses)


def lines(figures: CacheFigures) -> list[str]:
    """The printout: every series, then the figures the targets judge."""
    text = [line(SERIES[name], figures.series[name]) for name in SERIES]
    requests = figures.series["health"]["n"]
    not_semantic = sum(figures.not_semantic.values())
    return [
        *text,
        f"a hit over the /health floor:          {figures.hit_added:+.3f} ms (target <= 1 ms)",
        f"a miss with the cache over without:    {figures.miss_added:+.3f} ms (target <= 0.3 ms)",
        f"a hit against the provider (echo):     {figures.p50('hit') - figures.p50('same off'):+.3f} ms",
        f"a semantic hit less /health and embed: {figures.semantic_added:+.3f} ms (target <= 2 ms)",
        f"paraphrases not answered semantic-hit: {not_semantic} of {int(requests)} {figures.not_semantic or ''}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per series")
    parser.add_argument(
        "--vectors", default="", help="comma-separated index sizes to time searches at, e.g. 1000,10000"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp, Processes(Path(tmp) / "logs") as processes:
        figures = measure(processes, Path(tmp), args.requests)
    print("\n".join(lines(figures)))
    if figures.not_semantic:
        raise SystemExit(1)
    if args.vectors:
        vector_figures([int(size) for size in args.vectors.split(",")])


if __name__ == "__main__":
    main()
