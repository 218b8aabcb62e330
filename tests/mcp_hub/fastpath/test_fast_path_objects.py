"""The SDK dataclass the fast paths make by position, every request: its fields in the order the calls give."""

from __future__ import annotations

import dataclasses

from mcp.shared.message import ServerMessageMetadata


def test_the_message_metadata_takes_its_fields_in_the_order_the_fast_paths_give_them() -> None:
    names = [field.name for field in dataclasses.fields(ServerMessageMetadata) if not field.kw_only]
    assert names == [
        "related_request_id",
        "request_context",
        "close_sse_stream",
        "close_standalone_sse_stream",
        "on_request_unanswered",
        "can_send_request",
    ]
