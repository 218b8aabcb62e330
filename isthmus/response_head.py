"""uvicorn's request-response cycle with its common sends made in fewer steps, the same bytes on the wire.

uvicorn's `RequestResponseCycle.send` checks each response header's name and value with a regular expression of its
own, then lower-cases, compares and writes it: two `re.search` calls and some twenty steps per header, seven headers
for an LLM answer (uvicorn's `server` and `date`, the gateway's five). An app answers with few sequences of header
names, so `CheckedHeadCycle` checks and lower-cases each sequence once per process and keeps it as a template the
values fill (`_Plan`); the values are checked together, in one search of them joined by a tab, which the value
pattern allows. Whatever the shortcut is not sure of, a header that fails a check, a name that changes how uvicorn
goes on (`transfer-encoding`, `connection`), a head or body it does not take, goes to uvicorn's own `send`
unchanged, so every error and edge case is uvicorn's: the shortcut changes state only once it knows it will write
exactly what uvicorn would.

A start message that says its first body message follows at once (`BODY_FOLLOWS`) has its head written with that
body, in one write of the socket rather than two (a whole JSON answer, a stream's head with its first event): the
same bytes in the same order, one system call and one loopback segment less. Anything that is not that body (a
message uvicorn is to handle) has the head written first, as it would have been.
"""

from __future__ import annotations

from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HEADER_RE, STATUS_LINE, RequestResponseCycle

BODY_FOLLOWS = "isthmus.body_follows"
"""A key of an `http.response.start` message: true when the app sends its first `http.response.body` message right
after, without waiting for anything, so the head may wait for it (other servers ignore the key)."""

MAX_PLANS = 256
"""Header name sequences remembered; past that, a new sequence goes to uvicorn's own `send` (names come from the
app, but an app could make them up from requests)."""


class _Plan:
    """How uvicorn writes a head with these header names: the names as it writes them (lower-case) in a template the
    values fill, and where the first `content-length` is. Only for names uvicorn accepts, none of them
    `transfer-encoding` or `connection`, whose values change how it goes on."""

    __slots__ = ("connection_at", "length_at", "template")

    def __init__(self, names: tuple[bytes, ...]) -> None:
        lowered = [name.lower() for name in names]
        self.template = b"".join(name.replace(b"%", b"%%") + b": %s\r\n" for name in lowered)
        self.length_at = lowered.index(b"content-length") if b"content-length" in lowered else None
        self.connection_at = tuple(at for at, name in enumerate(lowered) if name == b"connection")
        """Where `connection` headers are (an event stream's `connection: keep-alive`): one that says `close` is
        left to uvicorn, which then ends the connection with the response."""


_VALUE_BYTES = bytes(0 if byte < 0x20 and byte != 0x09 or byte == 0x7F else 1 for byte in range(256))
"""Each byte as 0 when uvicorn's `HEADER_VALUE_RE` refuses it in a header value (a control character other than tab),
else 1: the values joined are checked by translating them with it and looking for a 0, some 2,000 instructions for
a chat answer's values where the pattern's search, a step of its matcher per byte, takes 7,000."""


_plans: dict[tuple[bytes, ...], _Plan | None] = {}
"""The plan of each sequence of header names, None for one uvicorn is to write itself."""


def _plan(names: tuple[bytes, ...]) -> _Plan | None:
    try:
        return _plans[names]
    except KeyError:
        pass
    usable = all(
        type(name) is bytes and not HEADER_RE.search(name) and name.lower() != b"transfer-encoding" for name in names
    )
    plan = _Plan(names) if usable else None
    if len(_plans) < MAX_PLANS:
        _plans[names] = plan
    return plan


class CheckedHeadCycle(RequestResponseCycle):
    """A request-response cycle whose response head and body are written as uvicorn writes them, with the header
    checks described in the module's docstring."""

    _held: bytes | None = None
    """A head written by `_head` but not yet sent: it goes out with the first body message (`BODY_FOLLOWS`)."""

    async def send(self, message: ASGISendEvent) -> None:
        if not (self.flow.write_paused or self.disconnected or self.access_log):
            if not self.response_started:
                if message["type"] == "http.response.start" and self._head(message):
                    return
            elif not self.response_complete and message["type"] == "http.response.body" and self._body(message):
                return
        if self._held is not None:  # uvicorn goes on from here: the head goes out first, as it would have
            self.transport.write(self._held)
            self._held = None
        await RequestResponseCycle.send(self, message)

    def _head(self, message: Any) -> bool:
        """Write the response head as uvicorn does; False, having changed nothing, when uvicorn is to do it."""
        status_code = message["status"]
        status_line = STATUS_LINE.get(status_code) if type(status_code) is int else None
        if status_line is None:
            return False
        try:
            # Every pair of two, or a ValueError (`strict`: one pair of another length).
            names, values = zip(*self.default_headers, *message.get("headers", []), strict=True)
            plan = _plan(names)
            if plan is None:
                return False
            if 0 in b"\t".join(values).translate(_VALUE_BYTES):  # `HEADER_VALUE_RE.search`, see `_VALUE_BYTES`
                return False
            for at in plan.connection_at:  # as uvicorn reads it: a comma-separated list of tokens
                if b"close" in [token.lower().strip() for token in values[at].split(b",")]:
                    return False
            length = self.expected_content_length
            chunked = self.chunked_encoding
            if plan.length_at is not None and chunked is None:
                length = int(values[plan.length_at].decode())
                chunked = False
            head = status_line + plan.template % values
        except (TypeError, ValueError, AttributeError):  # a malformed pair, value or length: uvicorn raises it
            return False
        if not self.keep_alive:
            head += b"connection: close\r\n"
        if chunked is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            chunked = True
            head += b"transfer-encoding: chunked\r\n"
        self.response_started = True
        self.waiting_for_100_continue = False
        self.chunked_encoding = chunked
        self.expected_content_length = length
        if message.get(BODY_FOLLOWS):
            self._held = head + b"\r\n"
        else:
            self.transport.write(head + b"\r\n")
        return True

    def _body(self, message: Any) -> bool:
        """Write a body message as uvicorn does, when it neither raises nor answers a HEAD request; else False, having
        changed nothing."""
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if type(body) is not bytes or self.scope["method"] == "HEAD":
            return False
        head = self._held or b""
        if self.chunked_encoding:
            if not more_body and self.expected_content_length != 0:
                return False
            if body:
                end = b"\r\n" if more_body else b"\r\n0\r\n\r\n"
                self.transport.write(b"".join((head, b"%x\r\n" % len(body), body, end)))
            elif not more_body:
                self.transport.write(head + b"0\r\n\r\n")
            elif head:
                self.transport.write(head)
        else:
            left = self.expected_content_length - len(body)
            if left < 0 or (left and not more_body):
                return False
            self.expected_content_length = left
            self.transport.write(head + body if head else body)
        self._held = None
        if not more_body:
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
        return True
