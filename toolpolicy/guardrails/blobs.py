"""Text carried as base64 (an MCP resource blob): which media types are text, and scanning one as text.

A blob whose `mimeType` is textual (`text/*`, JSON, XML, YAML, JavaScript, and the `+json`/`+xml`/`+yaml` suffixes)
is decoded, scanned like any text and, when a redaction changed it, encoded back (same charset, base64). Its charset
is the type's `charset` parameter, else UTF-8; bytes that are not valid in it are read as Latin-1 instead (one
character per byte, so an ASCII-shaped secret is still found and the bytes round-trip exactly). A blob with no type,
or any other type (images, audio, archives, PDFs), is not text and passes unscanned.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Callable

TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/typescript",
        "application/sql",
        "application/graphql",
        "application/x-sh",
        "application/x-httpd-php",
        "application/csv",
    }
)
TEXT_SUFFIXES = ("+json", "+xml", "+yaml")


def _parts(mime_type: str) -> tuple[str, str | None]:
    """The media type, lowercased, and its `charset` parameter if any."""
    essence, *parameters = mime_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return essence.strip().lower(), charset


def is_textual(mime_type: str | None) -> bool:
    """Whether a blob of this media type is text to scan."""
    if not mime_type:
        return False
    essence, _ = _parts(mime_type)
    return essence.startswith("text/") or essence in TEXT_TYPES or essence.endswith(TEXT_SUFFIXES)


def _codec(charset: str | None) -> str:
    if charset is None:
        return "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"  # an unknown charset: read as UTF-8 (or Latin-1 where that fails)


def decoded(blob: str, mime_type: str | None) -> tuple[str, str] | None:
    """The blob's text and the codec that reads it back, or None when it is not text (or not base64)."""
    if not is_textual(mime_type):
        return None
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return None  # not base64: the client cannot read it either, and there is no text in it to find
    codec = _codec(_parts(mime_type or "")[1])
    try:
        return data.decode(codec), codec
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def rewrite_blob(blob: str, mime_type: str | None, scan: Callable[[str], str]) -> str:
    """`blob` with its text passed through `scan` (which may raise to block it); the same string when the text is
    unchanged or the blob is not text."""
    found = decoded(blob, mime_type)
    if found is None:
        return blob
    text, codec = found
    rewritten = scan(text)
    if rewritten == text:
        return blob
    # What was decoded encodes back; only a redaction label's ASCII could be missing from an exotic charset.
    return base64.b64encode(rewritten.encode(codec, errors="replace")).decode("ascii")
