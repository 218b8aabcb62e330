"""py-spy's full file names are shortened to paths inside their packages, keeping namespace packages' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.stacks import MISREAD, PSEUDO, on_own_thread, parse_frame, samples, shorten

ROOTS = ("/venv/lib/python3.11/site-packages", "/venv/bin", "/repo", "/py/lib/python3.11")


def test_a_file_is_shortened_against_the_longest_root_it_is_under() -> None:
    assert shorten("/py/lib/python3.11/json/encoder.py", ROOTS) == "json/encoder.py"
    assert shorten("/repo/llm_proxy/endpoints.py", ROOTS) == "llm_proxy/endpoints.py"
    # OpenTelemetry is a namespace package: py-spy's own short name would be "trace/__init__.py", the stdlib's trace
    otel = "/venv/lib/python3.11/site-packages/opentelemetry/sdk/trace/__init__.py"
    assert shorten(otel, ROOTS) == "opentelemetry/sdk/trace/__init__.py"
    assert shorten("/venv/bin/isthmus", ROOTS) == "isthmus"
    assert shorten("aiohttp/client.py", ROOTS) == "aiohttp/client.py"


def test_a_file_outside_every_root_keeps_its_package_path_as_py_spy_would(tmp_path: Path) -> None:
    package = tmp_path / "tree" / "toolpolicy" / "store"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    assert shorten(str(package / "raw_write.py"), ROOTS) == "toolpolicy/store/raw_write.py"
    assert shorten(str(tmp_path / "script.py"), ROOTS) == "script.py"


def test_frames_name_their_package_and_code_without_a_file_is_pseudo() -> None:
    frame = parse_frame("ClientSession._request (/venv/lib/python3.11/site-packages/aiohttp/client.py:700)", ROOTS)
    assert (frame.function, frame.file, frame.package) == ("ClientSession._request", "aiohttp/client.py", "aiohttp")
    assert frame.name == "ClientSession._request (aiohttp/client.py)"
    assert parse_frame("__init__ (<string>:2)", ROOTS).package == PSEUDO
    assert parse_frame("_Environ.__getitem__ (<frozen os>)", ROOTS).package == PSEUDO


@pytest.mark.parametrize("file", ["attempts", "choices:-1271302736", "J\x03\x00:-1701595776", "creator_method"])
def test_a_frame_whose_file_is_no_path_is_a_misread_one(file: str) -> None:
    assert parse_frame(f"f ({file})", ROOTS).package == MISREAD
    assert parse_frame("f (json.py)", ROOTS).package == "json"  # a name py-spy shortened is still a module


def test_samples_skip_lines_that_are_not_samples_and_tell_threads_apart() -> None:
    raw = "\n".join(
        [
            "py-spy> Sampling process",
            "<module> (/repo/bench/passthrough.py:104);Runner.run (/py/lib/python3.11/asyncio/runners.py:118) 7",
            "Thread._bootstrap (/py/lib/python3.11/threading.py:1002);run (/py/lib/python3.11/threading.py:982) 3",
        ]
    )
    found = list(samples(raw, ROOTS))
    assert [(frames[-1].name, count) for frames, count in found] == [
        ("Runner.run (asyncio/runners.py)", 7),
        ("run (threading.py)", 3),
    ]
    assert [on_own_thread(frames) for frames, _ in found] == [False, True]
