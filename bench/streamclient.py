"""Streaming timings wrk cannot give: time to first byte, to first event, in all, and the gaps between events.

A separate process with one blocking keep-alive socket (`TCP_NODELAY`), so nothing but the kernel stands between
a chunk's arrival and its timestamp. It sends the same streamed chat request `count` times in a row, decodes the
chunked body, and timestamps each complete server-sent event as it arrives. Prints one JSON object.

    python -m bench.streamclient --url http://127.0.0.1:8080/v1/chat/completions --body-file body.json \
        --header 'Authorization: Bearer isk-...' --count 200 --warmup 20
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


class StreamError(Exception):
    """The answer was not a complete 200 event stream."""


@dataclass
class StreamTiming:
    headers_s: float
    events_s: list[float] = field(default_factory=list)
    """Arrival of each complete event, in seconds from sending the request."""
    total_s: float = 0.0


class Connection:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the benchmark only targets loopback addresses, not {parts.hostname!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _socket(self) -> socket.socket:
        if self.sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self.buffer = sock, b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv(self) -> None:
        data = self._socket().recv(65536)
        if not data:
            self.close()
            raise StreamError("the server closed the connection mid-answer")
        self.buffer += data

    def stream(self, body: bytes, headers: dict[str, str]) -> StreamTiming:
        head = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        sock = self._socket()
        started = time.perf_counter()
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        timing = StreamTiming(headers_s=time.perf_counter() - started)
        raw_head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
        status = int(status_line.split()[1])
        if fields.get("transfer-encoding", "").lower() != "chunked":
            length = int(fields.get("content-length", "0"))
            while len(self.buffer) < length:
                self._recv()
            payload, self.buffer = self.buffer[:length], self.buffer[length:]
            raise StreamError(f"status {status}, not a chunked stream: {payload[:200]!r}")
        events = b""
        while True:
            # One chunk: size line, data, CRLF. The terminal chunk has size 0.
            while b"\r\n" not in self.buffer:
                self._recv()
            size_line, _, rest = self.buffer.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                self._recv()
                size_line, _, rest = self.buffer.partition(b"\r\n")
            self.buffer = rest[size + 2 :]
            if size == 0:
                break
            events += rest[:size]
            now = time.perf_counter() - started
            while b"\n\n" in events:
                event, _, events = events.partition(b"\n\n")
                if event.strip():
                    timing.events_s.append(now)
        timing.total_s = time.perf_counter() - started
        if fields.get("connection", "").lower() == "close":
            self.close()
        if status != 200:
            raise StreamError(f"status {status}")
        return timing


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarise(timings: list[StreamTiming], errors: int, expected_gap_ms: float, paced: int) -> dict[str, Any]:
    """Percentiles in ms. `gaps` are between the `paced` content events, which the upstream sends `expected_gap_ms`
    apart (after the role event, which comes at once, and before the closing events, which come together)."""
    gaps = [
        (later - earlier) * 1000
        for t in timings
        for earlier, later in zip(t.events_s[1 : paced + 1], t.events_s[2 : paced + 1], strict=False)
    ]
    firsts = [t.events_s[0] * 1000 for t in timings if t.events_s]
    result: dict[str, Any] = {"streams": len(timings), "errors": errors}
    for name, values in (
        ("headers_ms", [t.headers_s * 1000 for t in timings]),
        ("first_event_ms", firsts),
        ("total_ms", [t.total_s * 1000 for t in timings]),
        ("gap_ms", gaps),
    ):
        result[name] = {q: percentile(values, float(q.removeprefix("p"))) for q in ("p50", "p90", "p99")}
    result["events_per_stream"] = statistics.median([len(t.events_s) for t in timings]) if timings else 0
    # A gap well under the upstream's pacing means two events arrived together: one was held back.
    result["held_back_share"] = sum(gap < expected_gap_ms / 4 for gap in gaps) / len(gaps) if gaps else 0.0
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=2.0, help="the upstream's pacing between content events")
    parser.add_argument("--chunks", type=int, default=16, help="content events per stream (after the role event)")
    args = parser.parse_args(argv)
    with open(args.body_file, "rb") as handle:
        body = handle.read()
    headers = {name.strip(): value.strip() for name, _, value in (h.partition(":") for h in args.header)}
    headers.setdefault("Content-Type", "application/json")
    connection = Connection(args.url)
    timings: list[StreamTiming] = []
    errors = 0
    first_error = ""
    for index in range(args.warmup + args.count):
        try:
            timing = connection.stream(body, headers)
        except (StreamError, OSError, ValueError) as exc:
            errors += index >= args.warmup
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            connection.close()
            continue
        if index >= args.warmup:
            timings.append(timing)
    connection.close()
    result = summarise(timings, errors, args.gap_ms, args.chunks)
    result["first_error"] = first_error
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
