"""Pagination of input items: order, limit, after."""

from __future__ import annotations

import pytest

from llm_proxy.responses.listing import page
from toolpolicy.errors import InvalidRequest

ITEMS = [{"id": f"msg_{number}"} for number in range(25)]


def ids(listing: dict[str, object]) -> list[str]:
    return [item["id"] for item in listing["data"]]  # type: ignore[attr-defined,index]


def test_newest_first_twenty_by_default() -> None:
    listing = page(ITEMS, {})
    assert ids(listing)[:2] == ["msg_24", "msg_23"] and len(ids(listing)) == 20
    assert listing["has_more"] is True and listing["first_id"] == "msg_24" and listing["last_id"] == "msg_5"


def test_after_continues_where_the_last_page_ended() -> None:
    listing = page(ITEMS, {"order": "asc", "limit": "10", "after": "msg_19"})
    assert ids(listing) == [f"msg_{number}" for number in range(20, 25)] and listing["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"order": "up"}, "order"), ({"after": "nope"}, "after")],
)
def test_bad_queries_name_their_param(query: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        page(ITEMS, query)
    assert refused.value.param == param
