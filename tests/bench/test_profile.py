"""py-spy's collapsed stacks are summarised by function and by package, start-up frames left out."""

from __future__ import annotations

from bench.profile import summarise

ROOT = "<module> (isthmus/cli.py:300);Runner.run (asyncio/runners.py:118)"
STACKS = "\n".join(
    [
        f"{ROOT};Endpoints._handle (llm_proxy/endpoints.py:112);read_json (llm_proxy/endpoints.py:57) 30",
        f"{ROOT};Endpoints._handle (llm_proxy/endpoints.py:120);Governor.admit (toolpolicy/governor.py:112) 50",
        "Thread._bootstrap (threading.py:1002);_connection_worker_thread (aiosqlite/core.py:63) 20",
    ]
)


def test_self_time_goes_to_the_innermost_frame_and_inclusive_time_to_every_package_on_the_stack() -> None:
    summary = summarise(STACKS)
    lines = summary.splitlines()
    assert lines[0] == "100 samples. Self time, top 12 functions:"
    assert lines[2] == "- 50.0% `Governor.admit (toolpolicy/governor.py)`"
    assert "- 30.0% `read_json (llm_proxy/endpoints.py)`" in lines
    assert "Self time by package: toolpolicy 50%, llm_proxy 30%, aiosqlite 20%" in summary
    inclusive = next(line for line in lines if line.startswith("Inclusive"))
    assert inclusive.endswith("llm_proxy 80%, toolpolicy 50%, aiosqlite 20%")
    assert "isthmus" not in inclusive and "asyncio" not in inclusive


def test_no_samples_says_so() -> None:
    assert summarise("") == "py-spy recorded no samples."


def test_full_file_names_are_summarised_by_package_and_namespace_packages_keep_their_name() -> None:
    site = "/venv/lib/python3.11/site-packages"
    root = "<module> (/venv/bin/isthmus:8);Runner.run (/py/lib/python3.11/asyncio/runners.py:118)"
    raw = f"{root};Tracer.start_span ({site}/opentelemetry/sdk/trace/__init__.py:1100) 3\n{root} 1"
    summary = summarise(raw, roots=(site, "/venv/bin", "/py/lib/python3.11"))
    assert "- 75.0% `Tracer.start_span (opentelemetry/sdk/trace/__init__.py)`" in summary
    assert "Self time by package: opentelemetry 75%, asyncio 25%" in summary
