"""The instruction-count A/B's arithmetic, its client and its per-tree settings."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.callgrind import Dump
from bench.instructions import (
    HOUR,
    ClientError,
    Window,
    per_request,
    send,
    spread,
    tree_settings,
    wait_quiet,
)
from bench.loadgen import HttpRequest


def window(instructions: int, seconds: float) -> Window:
    return Window(Dump(Path("callgrind.out.1"), {"Ir": instructions}), seconds)


def test_each_request_is_charged_the_window_less_what_the_idle_gateway_spends_in_as_long() -> None:
    idle = window(700_000, 2.0)  # 350,000 a second
    busy = window(13_000_000, 4.0)  # 1,400,000 of it idle
    assert per_request(busy, idle, 10) == pytest.approx(1_160_000)


def test_a_window_without_requests_or_an_idle_window_without_time_is_refused() -> None:
    with pytest.raises(ValueError, match="requests must be positive"):
        per_request(window(1, 1.0), window(1, 1.0), 0)
    with pytest.raises(ValueError, match="idle window must last"):
        per_request(window(1, 1.0), window(1, 0.0), 5)


def test_the_spread_is_the_range_over_the_median() -> None:
    assert spread([99.0, 100.0, 102.0]) == pytest.approx(0.03)
    assert spread([5.0]) == 0.0


def test_the_settings_that_make_the_count_repeatable_are_set_only_where_the_tree_knows_them(tmp_path: Path) -> None:
    (tmp_path / "toolpolicy").mkdir()
    assert tree_settings(tmp_path, 40) == {}
    (tmp_path / "toolpolicy" / "settings.py").write_text("batch_size: int = 1000\nflush_interval: float = 0.5\n")
    assert tree_settings(tmp_path, 40) == {"audit": {"flush_interval": HOUR, "batch_size": 40}}
    (tmp_path / "toolpolicy" / "telemetry_settings.py").write_text("loop_lag_interval: float = 0.1\n")
    assert tree_settings(tmp_path, 40)["telemetry"] == {"loop_lag_interval": 0}
    (tmp_path / "toolpolicy" / "settings.py").write_text("key_cache_ttl: float = 5.0\n")
    assert tree_settings(tmp_path, 40) == {"key_cache_ttl": HOUR, "telemetry": {"loop_lag_interval": 0}}
    # A newer tree keeps `audit:` in a module of its own, the older one in settings.py: both are read.
    (tmp_path / "toolpolicy" / "audit_settings.py").write_text(
        "batch_size: int = 1000\nflush_interval: float = 0.5\nspend_flush_interval: float = 0.25\n"
        "rate_journal_flush_interval: float = 0.25\n"
    )
    assert tree_settings(tmp_path, 40)["audit"] == {
        "flush_interval": HOUR,
        "batch_size": 40,
        "spend_flush_interval": HOUR,
        "rate_journal_flush_interval": HOUR,
    }


class Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes] = []
    answer = b"word word"

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.bodies = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/chat/completions"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_client_sends_exactly_the_count_each_with_its_own_id(server: str) -> None:
    send(HttpRequest(server, body=b'{"id": __BENCH_ID__}', expect="word"), 5, first_id=10)
    assert Recorder.bodies == [b'{"id": %d}' % number for number in range(10, 15)]


def test_an_answer_without_the_expected_text_stops_the_window(server: str) -> None:
    with pytest.raises(ClientError, match="request 1 .* answered 200: word word"):
        send(HttpRequest(server, body=b"{}", expect="[DONE]"), 3)
    assert len(Recorder.bodies) == 1


def test_a_process_that_keeps_using_the_cpu_is_not_taken_for_quiet() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with pytest.raises(TimeoutError, match=f"process {busy.pid} was still busy"):
            wait_quiet(busy.pid, timeout=2.0)
    finally:
        busy.kill()
        busy.wait()


def test_a_sleeping_process_is_quiet() -> None:
    sleeping = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wait_quiet(sleeping.pid, timeout=30.0)
    finally:
        sleeping.kill()
        sleeping.wait()
