"""Audit request ids made by the hub: unique, shaped as a UUID's hex, and a forked child never repeats its parent's."""

from __future__ import annotations

import os
import re

from toolpolicy.request_ids import fresh_request_id


def test_ids_are_unique_and_32_hex_digits() -> None:
    ids = [fresh_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", found) for found in ids)


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = fresh_request_id()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id and leave at once
        os.close(reader)
        os.write(writer, fresh_request_id().encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child[:16] != parent[:16]
    assert fresh_request_id()[:16] == parent[:16]
