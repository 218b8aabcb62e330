"""`SurfaceCheck` refuses exactly what the version's result schema refuses, checking a known shape only once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from mcp_types import methods
from pydantic import TypeAdapter, ValidationError

from mcp_hub.upstreams import result_shapes
from mcp_hub.upstreams.result_shapes import SurfaceCheck, result_shape
from tests.json_fuzz_support import plain_values

VERSIONS = ("2025-11-25", "2026-07-28")


def surface(version: str) -> TypeAdapter[Any]:
    return methods._adapter(methods.SERVER_RESULTS[("tools/call", version)])


def refused(check: Any, raw: Any) -> bool:
    try:
        check(raw)
    except ValidationError:
        return True
    return False


items = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image", "audio", "resource_link"])},
        optional={
            "text": plain_values(),
            "data": plain_values(),
            "mimeType": plain_values(),
            "uri": plain_values(),
            "name": plain_values(),
            "annotations": plain_values(),
            "_meta": plain_values(),
        },
    ),
    plain_values(),
)
objects = st.dictionaries(st.text(max_size=3), plain_values(), max_size=3)
results = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.lists(items, max_size=3), plain_values()),
        "structuredContent": st.one_of(objects, plain_values()),
        "isError": plain_values(),
        "resultType": st.sampled_from(["complete", "input_required", 3]),
        "_meta": plain_values(),
        "inputRequests": plain_values(),
    },
)


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from(VERSIONS), first=results, second=results)
def test_results_of_one_shape_get_one_verdict_and_it_is_the_schemas(
    version: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    schema = surface(version)
    check = SurfaceCheck(schema)
    for raw in (first, second):
        assert refused(check.check, raw) == refused(lambda value: schema.validate_python(value, by_name=False), raw)
    if result_shape(first) == result_shape(second):
        assert refused(check.check, first) == refused(check.check, second)


# A text that is not a string (2025; in 2026-07-28 the `input_required` arm ignores content), a bad `resultType`.
REFUSED = {"2025-11-25": {"content": [{"type": "text", "text": 5}]}, "2026-07-28": {"content": [], "resultType": 3}}


@pytest.mark.parametrize("version", VERSIONS)
def test_a_known_shape_is_not_checked_again_and_a_refused_one_always_is(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = SurfaceCheck(surface(version))
    checked: list[Any] = []
    validate = check.surface.validate_python
    monkeypatch.setattr(check.surface, "validate_python", lambda raw, **kw: (checked.append(raw), validate(raw, **kw)))
    text = {"type": "text", "text": "a"}
    for word in ("a", "bb", "ccc"):
        check.check({"content": [{**text, "text": word}], "structuredContent": {"w": word}, "resultType": "complete"})
    assert len(checked) == 1
    for _ in range(2):
        with pytest.raises(ValidationError):
            check.check(REFUSED[version])
    assert len(checked) == 3


def test_the_memory_starts_over_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(result_shapes, "KEPT", 2)
    check = SurfaceCheck(surface("2026-07-28"))
    for key in ("a", "b", "c"):
        check.check({"content": [], "resultType": "complete", "_meta": {key: 1}})
    assert len(check._accepted) == 1


@settings(max_examples=100, deadline=None)
@given(text=plain_values(), structured=plain_values())
def test_only_a_string_text_and_an_object_share_an_accepted_shape(text: Any, structured: Any) -> None:
    """After a plain result is accepted, the same result with any other text or structured content gets the schema's
    own verdict (2025: a text must be a string, structured content an object)."""
    schema = surface("2025-11-25")
    check = SurfaceCheck(schema)
    check.check({"content": [{"type": "text", "text": "a"}], "structuredContent": {"k": 1}})
    for raw in (
        {"content": [{"type": "text", "text": text}], "structuredContent": {"k": 1}},
        {"content": [{"type": "text", "text": "a"}], "structuredContent": structured},
    ):
        assert refused(check.check, raw) == refused(lambda value: schema.validate_python(value, by_name=False), raw)


def test_a_result_nested_deeper_than_repr_goes_is_checked_in_full() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    check = SurfaceCheck(surface("2026-07-28"))
    raw = {"content": [], "resultType": "complete", "_meta": {"deep": deep}}
    assert result_shape(raw) is None
    assert refused(check.check, raw) == refused(lambda value: surface("2026-07-28").validate_python(value), raw)
