"""Blobs as text: which media types are text, charsets, and exact round trips."""

from __future__ import annotations

import base64

import pytest

from toolpolicy.guardrails.blobs import decoded, is_textual, rewrite_blob


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.mark.parametrize(
    "mime_type",
    [
        "text/plain",
        "text/csv; charset=latin-1",
        "TEXT/HTML",
        "application/json",
        "application/vnd.api+json",
        "application/xml",
        "application/atom+xml",
        "application/yaml",
        "application/javascript",
    ],
)
def test_textual_types(mime_type: str) -> None:
    assert is_textual(mime_type)


@pytest.mark.parametrize(
    "mime_type", [None, "", "image/png", "audio/wav", "application/octet-stream", "application/pdf", "application/zip"]
)
def test_binary_types(mime_type: str | None) -> None:
    assert not is_textual(mime_type)
    assert rewrite_blob(b64(b"jo@example.com"), mime_type, lambda text: "changed") == b64(b"jo@example.com")


def test_a_blob_is_read_in_its_charset_and_written_back_in_it() -> None:
    blob = b64("José jo@example.com".encode("latin-1"))
    assert decoded(blob, "text/plain; charset=ISO-8859-1") == ("José jo@example.com", "iso8859-1")
    out = rewrite_blob(blob, "text/plain; charset=ISO-8859-1", lambda text: text.replace("jo@example.com", "[X]"))
    assert base64.b64decode(out) == "José [X]".encode("latin-1")


def test_bytes_that_are_not_utf8_are_read_as_latin1_and_round_trip() -> None:
    raw = b"\xff\xfe key AKIA \x80"
    text, codec = decoded(b64(raw), "text/plain") or ("", "")
    assert codec == "latin-1" and "AKIA" in text
    out = rewrite_blob(b64(raw), "text/plain", lambda value: value.replace("AKIA", "[R]"))
    assert base64.b64decode(out) == b"\xff\xfe key [R] \x80"


def test_an_unchanged_text_keeps_the_blob_as_it_came() -> None:
    blob = base64.b64encode(b"{}").decode()
    assert rewrite_blob(blob, "application/json", lambda text: text) is blob


def test_a_blob_that_is_not_base64_is_not_text() -> None:
    assert decoded("not base64!", "text/plain") is None


def test_a_scan_that_raises_blocks() -> None:
    def refuse(text: str) -> str:
        raise ValueError("blocked")

    with pytest.raises(ValueError, match="blocked"):
        rewrite_blob(b64(b"x"), "text/plain", refuse)
