"""Stored Responses API responses: written before the client sees the response, read and deleted per virtual key.

Every read and delete names the key that asks: a response another key created is indistinguishable from one that
does not exist (the HTTP edge answers 404 for both, never 403), so ids leak nothing across keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from toolpolicy.store.engine import Store
from toolpolicy.store.schema import ResponseRow


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One response as stored."""

    id: str
    key_id: str
    created_at: datetime
    model: str
    previous_response_id: str | None
    response: dict[str, Any]
    """The response object as the client received it."""
    input_items: list[Any]
    """Every input item the model was given, oldest first (a previous response's chain included)."""


def _stored(row: ResponseRow) -> StoredResponse:
    return StoredResponse(
        id=row.id,
        key_id=row.key_id,
        created_at=row.created_at,
        model=row.model,
        previous_response_id=row.previous_response_id,
        response=row.response,
        input_items=row.input_items,
    )


class ResponseStore:
    """`put`, `get` and `delete` of responses, each in its own transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(self, response: StoredResponse) -> None:
        """Store `response`, replacing one of the same id and key (a retried write is harmless)."""
        async with self.store.writing() as session:
            existing = await session.get(ResponseRow, response.id)
            if existing is not None:
                if existing.key_id != response.key_id:
                    raise ValueError(f"response id {response.id!r} is taken")
                await session.delete(existing)
                await session.flush()
            session.add(
                ResponseRow(
                    id=response.id,
                    key_id=response.key_id,
                    created_at=response.created_at,
                    model=response.model,
                    previous_response_id=response.previous_response_id,
                    response=response.response,
                    input_items=response.input_items,
                )
            )

    async def get(self, key_id: str, response_id: str) -> StoredResponse | None:
        """The response `key_id` created under `response_id`, or None (absent, or another key's)."""
        statement = select(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.key_id == key_id)
        async with self.store.session() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        return None if row is None else _stored(row)

    async def delete(self, key_id: str, response_id: str) -> bool:
        """Delete the response `key_id` created under `response_id`; False when there was none."""
        statement = delete(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.key_id == key_id)
        async with self.store.writing() as session:
            result = await session.execute(statement)
        return bool(getattr(result, "rowcount", 0))
