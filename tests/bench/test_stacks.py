"""py-spy's full file names are shortened to paths inside their packages, keeping namespace packages' names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.stacks import MISREAD, NATIVE, PSEUDO, parse_frame, samples, shorten

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
    generated = parse_frame("where (<sqlalchemy generated _generative() wrapper for Select.where>:1)", ROOTS)
    assert (generated.function, generated.package) == ("where", PSEUDO)


@pytest.mark.parametrize("file", ["attempts", "choices:-1271302736", "J\x03\x00:-1701595776", "creator_method"])
def test_a_frame_whose_file_is_no_path_is_a_misread_one(file: str) -> None:
    assert parse_frame(f"f ({file})", ROOTS).package == MISREAD
    assert parse_frame("f (json.py)", ROOTS).package == "json"  # a name py-spy shortened is still a module


def test_samples_skip_lines_that_are_not_samples() -> None:
    raw = "\n".join(
        [
            "py-spy> Sampling process",
            "<module> (/repo/bench/passthrough.py:104);Runner.run (/py/lib/python3.11/asyncio/runners.py:118) 7",
            "Thread._bootstrap (/py/lib/python3.11/threading.py:1002);run (/py/lib/python3.11/threading.py:982) 3",
        ]
    )
    found = list(samples(raw, ROOTS))
    assert [(sample.frames[-1].name, sample.count) for sample in found] == [
        ("Runner.run (asyncio/runners.py)", 7),
        ("run (threading.py)", 3),
    ]
    assert [sample.thread for sample in found] == [None, None]  # recorded without --threads


def test_each_stack_names_its_os_thread_and_keeps_its_c_frames_apart() -> None:
    raw = "\n".join(
        [
            "thread (11724): MainThread;0x7fe762e4524a (/usr/lib/x86_64-linux-gnu/libc.so.6);<module> (/repo/t.py:19);"
            "sock_send (/tmp/python-build/Python-3.11.7/Modules/socketmodule.c:4207);"
            "send (/usr/lib/x86_64-linux-gnu/libc.so.6) 91",
            "thread (11726): Thread-2 (_connection_worker_thread);Thread._bootstrap "
            "(/py/lib/python3.11/threading.py:1002);pwrite64 (/usr/lib/x86_64-linux-gnu/libc.so.6) 4",
            "thread (11727): probe;0x7f15e25d96b8 (?);clock_gettime (/lib/libc.so.6);0x7f15e26aab66 ([vdso]) 1",
        ]
    )
    first, second, third = samples(raw, ROOTS)
    assert (first.thread, first.thread_name, first.count) == (11724, "MainThread", 91)
    assert [frame.native for frame in first.frames] == [True, False, True, True]
    assert [frame.name for frame in first.python_frames] == ["<module> (t.py)"]
    assert first.frames[-1].file == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert (second.thread, second.thread_name) == (11726, "Thread-2 (_connection_worker_thread)")
    assert {frame.package for frame in third.frames} == {NATIVE}
