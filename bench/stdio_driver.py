"""A stdio MCP server's own rate: one driver process keeps `c` `tools/call` requests in flight on its stdin.

This is the reference a gateway in front of a stdio server is held to: the server as fast as one client process
can drive it over its pipes, with the same concurrency the load generator gives the gateway. The driver starts the
server, completes the 2025 handshake, warms up, then measures for `--duration` seconds: every answer is timed from
its request's write and replaced at once by the next request. Latency percentiles cover the measured answers.
It prints one JSON line with the figures `bench.loadgen.LoadResult` holds.

    python -m bench.stdio_driver --connections 16 --duration 5 -- python -m bench.mock_mcp_stdio
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.scenarios import CLIENT_INFO, ECHO_TEXT, LEGACY

READ_BYTES = 1 << 16


class Driver:
    """Requests written to the server's stdin, answers read from its stdout, matched by id."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.write_fd, self.read_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.pending = b""
        self.next_id = 1
        call = {"jsonrpc": "2.0", "id": 0, "method": "tools/call", "params": {"name": "echo"}}
        call["params"]["arguments"] = {"text": ECHO_TEXT}
        head, _, tail = json.dumps(call, separators=(",", ":")).partition('"id":0')
        self._call_head, self._call_tail = (head + '"id":').encode(), (tail + "\n").encode()

    def write(self, block: bytes) -> None:
        while block:
            block = block[os.write(self.write_fd, block) :]

    def read_lines(self) -> list[bytes]:
        chunk = os.read(self.read_fd, READ_BYTES)
        if not chunk:
            raise RuntimeError(f"the server closed its stdout (exit code {self.proc.poll()})")
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        return [line for line in lines if line.strip()]

    def request(self, method: str, params: dict[str, Any]) -> Any:
        """One request on its own, for the handshake."""
        rid, self.next_id = self.next_id, self.next_id + 1
        self.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}).encode() + b"\n")
        while True:
            for line in self.read_lines():
                message = json.loads(line)
                if message.get("id") == rid:
                    return message
        return None  # pragma: no cover

    def handshake(self) -> None:
        init = self.request("initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO})
        if "result" not in init:
            raise RuntimeError(f"initialize answered {init}")
        self.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def calls(self, count: int) -> tuple[bytes, list[int]]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return b"".join(self._call_head + str(i).encode() + self._call_tail for i in ids), ids

    def load(self, connections: int, seconds: float) -> tuple[list[float], int, int, float]:
        """Keep `connections` calls in flight for `seconds`: latencies (ms), answers, bad answers, elapsed."""
        sent: dict[int, float] = {}
        block, ids = self.calls(connections)
        now = time.perf_counter()
        sent.update(dict.fromkeys(ids, now))
        self.write(block)
        began = now
        end = began + seconds
        latencies: list[float] = []
        bad = 0
        while sent:
            lines = self.read_lines()
            now = time.perf_counter()
            for line in lines:
                message = json.loads(line)
                started = sent.pop(message.get("id"), None)
                if started is None:
                    continue
                latencies.append((now - started) * 1000)
                if ECHO_TEXT.encode() not in line or "result" not in message or message["result"].get("isError"):
                    bad += 1
            more = len(lines) if now < end else 0
            if more:
                block, ids = self.calls(more)
                sent.update(dict.fromkeys(ids, time.perf_counter()))
                self.write(block)
        return latencies, len(latencies), bad, time.perf_counter() - began

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(connections: int, latencies: list[float], requests: int, bad: int, seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "connections": connections,
        "requests": requests,
        "seconds": seconds,
        "p50_ms": percentile(ordered, 0.5),
        "p90_ms": percentile(ordered, 0.9),
        "p99_ms": percentile(ordered, 0.99),
        "mean_ms": sum(ordered) / len(ordered) if ordered else 0.0,
        "max_ms": ordered[-1] if ordered else 0.0,
        "errors": {"bad": bad},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16, help="calls in flight")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("command", nargs="+", help="the stdio server's command line (after --)")
    args = parser.parse_args(argv)
    driver = Driver(args.command)
    try:
        driver.handshake()
        driver.load(args.connections, args.warmup)
        latencies, requests, bad, seconds = driver.load(args.connections, args.duration)
    finally:
        driver.close()
    print(json.dumps(summary(args.connections, latencies, requests, bad, seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
