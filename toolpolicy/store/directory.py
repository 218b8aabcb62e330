"""The governance hierarchy in the store: customers -> teams -> virtual keys.

Every change is one transaction: it is validated whole, then written whole, or nothing is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from toolpolicy.errors import Conflict, InvalidRequest, NotFound
from toolpolicy.guardrails.settings import GuardrailRefs
from toolpolicy.secrets import display_prefix, generate_secret, hash_secret
from toolpolicy.settings import CustomerSettings, GatewaySettings, TeamSettings, VirtualKeySettings
from toolpolicy.store.engine import Store
from toolpolicy.store.schema import CustomerRow, KeyRow, TeamRow, utcnow
from toolpolicy.validation import invalid_request

SpecT = TypeVar("SpecT", bound=BaseModel)
RowT = TypeVar("RowT", bound=CustomerRow | TeamRow | KeyRow)

_KEY_POLICY_FIELDS = (
    "models",
    "mcp",
    "budgets",
    "provider_budgets",
    "rate_limit",
    "provider_rate_limits",
    "mcp_rate_limit",
    "code_mode",
    "active",
    "expires_at",
)
MAX_PAGE = 500
CACHE_ENTRY = "@cache"
"""Where a key's `cache` setting is kept, as its `agent` block is (below)."""
AGENT_ENTRY = "@agent"
"""Where a key's `agent` block is kept: an entry of its `mcp` JSON column (no migration), under a name no MCP
server can have (server names are `[a-z0-9-]+`). Reads split it back out, so nothing else ever sees it."""


def new_id() -> str:
    return uuid.uuid4().hex


def _validate(model: type[SpecT], data: Mapping[str, Any]) -> SpecT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


def _dump(spec: BaseModel, field: str) -> Any:
    return spec.model_dump(mode="json")[field]


class Directory:
    """Create, read, update and delete customers, teams and keys by name."""

    def __init__(
        self,
        store: Store,
        *,
        mcp_servers: Collection[str] | None = None,
        guardrails: Collection[str] | None = None,
    ) -> None:
        self.store = store
        self.mcp_servers = mcp_servers
        """The configured MCP server names a key's allowlist may name; None accepts any."""
        self.guardrails = guardrails
        """The configured guardrail rule names an entity may list or skip; None accepts any."""

    # -- reads ---------------------------------------------------------------------------------------------------

    async def _one(self, session: AsyncSession, row_type: type[RowT], name: str) -> RowT:
        row = await self._find(session, row_type, name)
        if row is None:
            raise NotFound(f"no {_label(row_type)} named {name!r}", param="name")
        return row

    async def _names(self, session: AsyncSession, *rows: Any) -> tuple[dict[str, str], dict[str, str]]:
        """Names of the customers and teams these rows refer to, by id."""
        customer_ids = {getattr(row, "customer_id", None) for row in rows} - {None}
        team_ids = {getattr(row, "team_id", None) for row in rows} - {None}
        customers: dict[str, str] = {}
        teams: dict[str, str] = {}
        if customer_ids:
            query = select(CustomerRow.id, CustomerRow.name).where(CustomerRow.id.in_(customer_ids))
            customers = {str(id_): str(name) for id_, name in await session.execute(query)}
        if team_ids:
            query = select(TeamRow.id, TeamRow.name).where(TeamRow.id.in_(team_ids))
            teams = {str(id_): str(name) for id_, name in await session.execute(query)}
        return customers, teams

    async def get(self, row_type: type[RowT], name: str) -> dict[str, Any]:
        async with self.store.session() as session:
            row = await self._one(session, row_type, name)
            return _render(row, *await self._names(session, row))

    async def page(self, row_type: type[RowT], *, limit: int = 100, after: str | None = None) -> list[dict[str, Any]]:
        """Up to `limit` rows ordered by name, starting after the name `after` (cursor pagination)."""
        query: Select[RowT] = select(row_type).order_by(row_type.name).limit(max(1, min(limit, MAX_PAGE)))
        if after is not None:
            query = query.where(row_type.name > after)
        async with self.store.session() as session:
            rows = (await session.execute(query)).scalars().all()
            names = await self._names(session, *rows)
            return [_render(row, *names) for row in rows]

    # -- customers and teams -------------------------------------------------------------------------------------

    async def create_customer(self, data: Mapping[str, Any], *, source: str = "api") -> dict[str, Any]:
        spec = _validate(CustomerSettings, data)
        row = CustomerRow(id=new_id(), source=source)
        self._apply_customer(row, spec)
        return await self._insert(row)

    async def create_team(self, data: Mapping[str, Any], *, source: str = "api") -> dict[str, Any]:
        spec = _validate(TeamSettings, data)
        async with self.store.writing() as session:
            row = TeamRow(id=new_id(), source=source)
            await self._apply_team(session, row, spec)
            session.add(row)
            await _flush(session, row)
            return _render(row, *await self._names(session, row))

    async def update(self, row_type: type[RowT], name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the stored entity, validate the result whole, and write it."""
        if "value" in patch:
            raise InvalidRequest("a key's secret cannot be set; use rotate", param="value")
        async with self.store.writing() as session:
            row = await self._one(session, row_type, name)
            customers, teams = await self._names(session, row)
            merged = {**_spec_fields(row, customers, teams), **patch}
            if isinstance(row, CustomerRow):
                self._apply_customer(row, _validate(CustomerSettings, merged))
            elif isinstance(row, TeamRow):
                await self._apply_team(session, row, _validate(TeamSettings, merged))
            else:
                await self._apply_key(session, row, _validate(VirtualKeySettings, merged))
            await _flush(session, row)
            return _render(row, *await self._names(session, row))

    async def delete(self, row_type: type[RowT], name: str) -> None:
        async with self.store.writing() as session:
            row = await self._one(session, row_type, name)
            await session.delete(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"{_label(row_type)} {name!r} still has teams or keys; delete or move them first", param="name"
                ) from None

    # -- keys ----------------------------------------------------------------------------------------------------

    async def create_key(
        self, data: Mapping[str, Any], *, source: str = "api", secret: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """Create a key; return its record and its secret (the only time the secret is available)."""
        if "value" in data and source == "api":
            raise InvalidRequest("the secret is generated by the gateway; leave out 'value'", param="value")
        spec = _validate(VirtualKeySettings, data)
        secret = secret or generate_secret()
        async with self.store.writing() as session:
            row = KeyRow(id=new_id(), source=source, key_hash=hash_secret(secret), key_prefix=display_prefix(secret))
            await self._apply_key(session, row, spec)
            session.add(row)
            await _flush(session, row)
            return _render(row, *await self._names(session, row)), secret

    async def rotate_key(self, name: str) -> tuple[dict[str, Any], str]:
        """Replace a key's secret; the old secret stops working."""
        secret = generate_secret()
        async with self.store.writing() as session:
            row = await self._one(session, KeyRow, name)
            if not row.active:
                raise Conflict(
                    f"key {name!r} is revoked or inactive; set active: true before rotating it", param="name"
                )
            row.key_hash, row.key_prefix = hash_secret(secret), display_prefix(secret)
            row.updated_at = utcnow()
            return _render(row, *await self._names(session, row)), secret

    async def revoke_key(self, name: str) -> dict[str, Any]:
        async with self.store.writing() as session:
            row = await self._one(session, KeyRow, name)
            row.active, row.revoked_at = False, utcnow()
            return _render(row, *await self._names(session, row))

    async def find_key(self, key_hash: str) -> dict[str, Any] | None:
        """The key with this secret hash, with its team's and customer's budgets, or None."""
        return await self._find_key(KeyRow.key_hash == key_hash)

    async def find_key_by_id(self, key_id: str) -> dict[str, Any] | None:
        """The key with this id, as `find_key` returns it (OAuth tokens name their key by id)."""
        return await self._find_key(KeyRow.id == key_id)

    async def find_key_by_name(self, name: str) -> dict[str, Any] | None:
        """The key with this name, as `find_key` returns it (external tokens map to a key by name)."""
        return await self._find_key(KeyRow.name == name)

    async def _find_key(self, condition: ColumnElement[bool]) -> dict[str, Any] | None:
        async with self.store.session() as session:
            row = (await session.execute(select(KeyRow).where(condition))).scalar_one_or_none()
            if row is None:
                return None
            record = _render(row, *await self._names(session, row))
            record["key_hash"] = row.key_hash
            team = await session.get(TeamRow, row.team_id) if row.team_id else None
            customer_id = team.customer_id if team is not None else row.customer_id
            customer = await session.get(CustomerRow, customer_id) if customer_id else None
            record["customer"] = customer.name if customer is not None else None
            record["team_id"], record["customer_id"] = row.team_id, customer_id
            record["team_budgets"] = team.budgets if team is not None else []
            record["customer_budgets"] = customer.budgets if customer is not None else []
            # The key's own `cache` wins over its team's, which wins over its customer's (`principal_from_record`).
            record["team_cache"] = team.cache if team is not None else None
            record["customer_cache"] = customer.cache if customer is not None else None
            # The rules the key, its team and its customer list or skip, together (the engine resolves them).
            for field in ("guardrails", "skip_guardrails"):
                names = [
                    name for entity in (row, team, customer) if entity is not None for name in _listed(entity)[field]
                ]
                record[field] = list(dict.fromkeys(names))
            return record

    # -- config seeding ------------------------------------------------------------------------------------------

    async def seed(self, settings: GatewaySettings) -> list[tuple[str, str]]:
        """Write the config's customers, teams and keys in one transaction; safe to repeat at every start.

        Returns (key name, secret) for each key created here without a configured value: the only time those
        secrets are seen. A key revoked through the admin API stays revoked although the config says `active`.
        """
        for attempt in range(3):
            try:
                return await self._seed_once(settings)
            except IntegrityError:
                # Another replica seeded the same names at the same moment; its rows are there now.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _seed_once(self, settings: GatewaySettings) -> list[tuple[str, str]]:
        generated: list[tuple[str, str]] = []
        async with self.store.writing() as session:
            for customer in settings.customers:
                row = await self._find(session, CustomerRow, customer.name) or CustomerRow(id=new_id())
                row.source = "config"
                self._apply_customer(row, customer)
                session.add(row)
            await session.flush()
            for team in settings.teams:
                team_row = await self._find(session, TeamRow, team.name) or TeamRow(id=new_id())
                team_row.source = "config"
                await self._apply_team(session, team_row, team)
                session.add(team_row)
            await session.flush()
            for key in settings.virtual_keys:
                secret = key.value.get_secret_value() if key.value is not None else None
                key_row = await self._find(session, KeyRow, key.name)
                if key_row is None:
                    if secret is None:
                        secret = generate_secret()
                        generated.append((key.name, secret))
                    key_row = KeyRow(id=new_id())
                was_revoked = key_row.revoked_at is not None
                if secret is not None:
                    key_row.key_hash, key_row.key_prefix = hash_secret(secret), display_prefix(secret)
                key_row.source = "config"
                await self._apply_key(session, key_row, key)
                if was_revoked:
                    key_row.active = False
                session.add(key_row)
            await session.flush()
        return generated

    async def _find(self, session: AsyncSession, row_type: type[RowT], name: str) -> RowT | None:
        return (await session.execute(select(row_type).where(row_type.name == name))).scalar_one_or_none()

    # -- shared --------------------------------------------------------------------------------------------------

    async def _insert(self, row: CustomerRow | TeamRow | KeyRow) -> dict[str, Any]:
        async with self.store.writing() as session:
            session.add(row)
            await _flush(session, row)
            return _render(row, *await self._names(session, row))

    async def _ref(self, session: AsyncSession, row_type: type[RowT], name: str | None, field: str) -> str | None:
        if name is None:
            return None
        found = (await session.execute(select(row_type.id).where(row_type.name == name))).scalar_one_or_none()
        if found is None:
            raise InvalidRequest(f"{field}: no {_label(row_type)} named {name!r}", param=field)
        return found

    def _apply_guardrails(self, row: CustomerRow | TeamRow | KeyRow, spec: GuardrailRefs) -> None:
        for field in ("guardrails", "skip_guardrails"):
            for name in getattr(spec, field):
                if self.guardrails is not None and name not in self.guardrails:
                    raise InvalidRequest(f"{field}: no guardrail rule named {name!r} is configured", param=field)
        listed = {"guardrails": spec.guardrails, "skip_guardrails": spec.skip_guardrails}
        row.guardrails = listed if spec.guardrails or spec.skip_guardrails else None

    def _apply_customer(self, row: CustomerRow, spec: CustomerSettings) -> None:
        self._apply_guardrails(row, spec)
        row.name, row.budgets, row.meta = spec.name, _dump(spec, "budgets"), spec.metadata
        row.cache = _dump(spec, "cache")

    async def _apply_team(self, session: AsyncSession, row: TeamRow, spec: TeamSettings) -> None:
        self._apply_guardrails(row, spec)
        row.name, row.budgets, row.meta = spec.name, _dump(spec, "budgets"), spec.metadata
        row.cache = _dump(spec, "cache")
        row.customer_id = await self._ref(session, CustomerRow, spec.customer, "customer")

    async def _apply_key(self, session: AsyncSession, row: KeyRow, spec: VirtualKeySettings) -> None:
        for server in spec.mcp:
            if self.mcp_servers is not None and server not in self.mcp_servers:
                raise InvalidRequest(
                    f"mcp.{server}: no MCP server named {server!r} is configured", param=f"mcp.{server}"
                )
        self._apply_guardrails(row, spec)
        row.name, row.meta = spec.name, spec.metadata
        row.team_id = await self._ref(session, TeamRow, spec.team, "team")
        row.customer_id = await self._ref(session, CustomerRow, spec.customer, "customer")
        dumped = spec.model_dump(mode="json")
        for field in _KEY_POLICY_FIELDS:
            setattr(row, field, dumped[field])
        if dumped["agent"] is not None:
            row.mcp = {**row.mcp, AGENT_ENTRY: dumped["agent"]}
        if dumped["cache"] is not None:
            row.mcp = {**row.mcp, CACHE_ENTRY: dumped["cache"]}
        row.expires_at = spec.expires_at
        if spec.active:
            row.revoked_at = None


async def _flush(session: AsyncSession, row: CustomerRow | TeamRow | KeyRow) -> None:
    name = row.name  # read before flushing: a failed flush expires the row
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a {_label(type(row))} named {name!r} already exists", param="name") from None


def _listed(row: CustomerRow | TeamRow | KeyRow) -> dict[str, list[str]]:
    stored = row.guardrails or {}
    return {field: list(stored.get(field) or []) for field in ("guardrails", "skip_guardrails")}


def _label(row_type: type[Any]) -> str:
    return {CustomerRow: "customer", TeamRow: "team", KeyRow: "key"}[row_type]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _spec_fields(
    row: CustomerRow | TeamRow | KeyRow, customers: dict[str, str], teams: dict[str, str]
) -> dict[str, Any]:
    """The stored entity in the shape of its settings model, so a patch merges into it."""
    fields: dict[str, Any] = {"name": row.name, "metadata": row.meta}
    fields.update(_listed(row))
    if isinstance(row, CustomerRow | TeamRow):
        fields["budgets"] = row.budgets
        fields["cache"] = row.cache
    if isinstance(row, TeamRow):
        fields["customer"] = customers.get(row.customer_id) if row.customer_id else None
    if isinstance(row, KeyRow):
        fields["team"] = teams.get(row.team_id) if row.team_id else None
        fields["customer"] = customers.get(row.customer_id) if row.customer_id else None
        fields.update({field: getattr(row, field) for field in _KEY_POLICY_FIELDS})
        mcp = dict(row.mcp or {})
        fields["agent"] = mcp.pop(AGENT_ENTRY, None)
        fields["cache"] = mcp.pop(CACHE_ENTRY, None)
        fields["mcp"] = mcp
        fields["expires_at"] = _iso(row.expires_at)
    return fields


def _render(row: CustomerRow | TeamRow | KeyRow, customers: dict[str, str], teams: dict[str, str]) -> dict[str, Any]:
    """The public JSON shape of an entity (never a key's hash)."""
    record = {"id": row.id, **_spec_fields(row, customers, teams), "source": row.source}
    record["created_at"], record["updated_at"] = _iso(row.created_at), _iso(row.updated_at)
    if isinstance(row, KeyRow):
        record["key_prefix"] = row.key_prefix
        record["revoked_at"] = _iso(row.revoked_at)
    return record
