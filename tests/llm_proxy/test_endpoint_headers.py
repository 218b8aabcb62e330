"""The endpoints read a request's headers from one plain dict, answering as Starlette's `Headers.get` would."""

from __future__ import annotations

from starlette.requests import Request

from llm_proxy.endpoints import header_map


def request(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": list(headers)})


def test_each_name_maps_to_its_first_value_as_headers_get_answers() -> None:
    raw = request(
        (b"authorization", b"Bearer isk-first"),
        (b"x-request-id", b"abc"),
        (b"authorization", b"Bearer isk-second"),
        (b"x-caf\xe9", b"cr\xe8me"),
    )
    headers = header_map(raw)
    assert headers == {"authorization": "Bearer isk-first", "x-request-id": "abc", "x-caf\xe9": "cr\xe8me"}
    for name in headers:
        assert headers[name] == raw.headers.get(name)
    assert headers.get("content-length") is None
