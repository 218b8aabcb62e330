"""Pagination over the aggregated lists: an opaque cursor carrying an offset into the deterministic order."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import TypeVar

from toolpolicy.errors import InvalidRequest

T = TypeVar("T")
_PREFIX = "p1:"


def page(items: Sequence[T], cursor: str | None, size: int | None) -> tuple[list[T], str | None]:
    """One page of `items` from `cursor` (None: the first), and the next page's cursor (None: this was the last)."""
    start = _decode(cursor) if cursor is not None else 0
    if size is None:
        return list(items[start:]), None
    end = start + size
    return list(items[start:end]), _encode(end) if end < len(items) else None


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_PREFIX):
            raise ValueError(raw)
        offset = int(raw[len(_PREFIX) :])
        if offset < 0:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(f"cursor {cursor!r} is not one this server returned; list again without it") from None
    return offset
