"""Tables of the store. Changes here need an Alembic revision in `migrations/versions/`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite has no BIGINT autoincrement: its rowid alias must be INTEGER.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class _Entity:
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="api")
    """`config` for entities seeded from the config file, `api` for those made through the admin API or CLI."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    guardrails: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """`{"guardrails": [...], "skip_guardrails": [...]}`: the rules the entity lists or skips (null: none)."""


class CustomerRow(_Entity, Base):
    __tablename__ = "customers"

    budgets: Mapped[list[Any]] = mapped_column(default=list)
    cache: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    """The customer's response cache setting as configured: null, true, false or `{"ttl": seconds}`."""


class TeamRow(_Entity, Base):
    __tablename__ = "teams"

    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"), index=True)
    budgets: Mapped[list[Any]] = mapped_column(default=list)
    cache: Mapped[Any] = mapped_column(JSON, default=None, nullable=True)
    """The team's response cache setting as configured: null, true, false or `{"ttl": seconds}`."""


class KeyRow(_Entity, Base):
    __tablename__ = "virtual_keys"

    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"), index=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    models: Mapped[list[Any]] = mapped_column(default=list)
    mcp: Mapped[dict[str, Any]] = mapped_column(default=dict)
    budgets: Mapped[list[Any]] = mapped_column(default=list)
    provider_budgets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rate_limit: Mapped[dict[str, Any] | None]
    provider_rate_limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mcp_rate_limit: Mapped[dict[str, Any] | None]
    code_mode: Mapped[bool | None] = mapped_column(Boolean)


class SpendRow(Base):
    """One settled charge: what a request cost, against the key, team and customer it ran under."""

    __tablename__ = "spend_ledger"
    __table_args__ = (Index("ix_spend_ledger_key_time", "key_id", "created_at"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    team_id: Mapped[str | None] = mapped_column(String(32), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(32), index=True)
    provider: Mapped[str | None] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(512))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 10))


class AuditRow(Base):
    """One request that a governance decision touched."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_key_time", "key_name", "ts"),
        Index("ix_audit_events_target_time", "target", "ts"),
        Index("ix_audit_events_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    """Position in the hash chain: consecutive, so a deleted record leaves a gap."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the previous hash and this record's fields."""
    ts: Mapped[datetime] = mapped_column(index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str | None] = mapped_column(String(32))
    key_name: Mapped[str | None] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), index=True)
    customer: Mapped[str | None] = mapped_column(String(128), index=True)
    target: Mapped[str] = mapped_column(String(512))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    writer_id: Mapped[str | None] = mapped_column(String(32))
    """The writer (one per gateway process) that emitted this record; null for records written directly."""
    emit_seq: Mapped[int | None] = mapped_column(BigInteger)
    """The record's emission number within its writer: 1, 2, 3... so a record emitted but never written leaves a gap."""


class AuditWriterRow(Base):
    """What each audit writer last reported: how many records it had emitted, and whether it stopped cleanly."""

    __tablename__ = "audit_writers"

    writer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    emitted: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest emission number handed out when it last wrote (a high-water mark)."""
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    """Records it had dropped (buffer overflow, store down at shutdown), as it counted them."""
    closed_at: Mapped[datetime | None]
    """When it stopped after writing everything it could; null while running (or after a crash)."""


class AuditChainRow(Base):
    """The head of the audit hash chain (one row), and the anchor left by retention pruning."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger)
    """Records up to this seq were pruned; the oldest kept record is anchor_seq + 1."""
    anchor_hash: Mapped[str] = mapped_column(String(64))
    """The hash the oldest kept record must name as its previous hash."""


class RateJournalRow(Base):
    """Usage of one rate-limit bucket while its window lasts: what a restarted counter store re-seeds it from."""

    __tablename__ = "rate_journal"

    bucket: Mapped[str] = mapped_column(String(512), primary_key=True)
    """The counter bucket, e.g. `rl:<key id>:-:requests:60:60s@29926800`."""
    used: Mapped[int] = mapped_column(BigInteger)
    """Requests, tool calls or tokens counted in the bucket, holds of requests in flight included."""
    expires_at: Mapped[datetime] = mapped_column(index=True)
    """When the window is over and the row may be pruned."""


class ResponseRow(Base):
    """One stored Responses API response, readable only under the virtual key that created it."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The response id (`resp_...`), as minted by this gateway or by the provider that answered natively."""
    key_id: Mapped[str] = mapped_column(String(32))
    """The virtual key that created it: every read and delete is scoped to it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(512))
    previous_response_id: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The response object as the client received it."""
    input_items: Mapped[list[Any]] = mapped_column(JSON)
    """Every input item the model was given: the previous response's chain, then this request's input."""


class CacheEntryRow(Base):
    """One response cache entry (`llm_proxy.cache`), so that a restart keeps the cache."""

    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    """Scope, route, model and parameters hash."""
    key_name: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(512), index=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    """When the answer was stored: a reconnecting replica loads what is newer than what it has."""
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The whole entry (`Entry.to_json`)."""


class OAuthSigningKeyRow(Base):
    """A signing key of the built-in authorization server, shared by every replica (`toolpolicy.oauth.signing`)."""

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The private key as a JWK: whoever reads the store can mint tokens, as whoever can write it can add keys."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OAuthClientRow(Base):
    """A client registered through dynamic client registration (RFC 7591)."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_name: Mapped[str] = mapped_column(String(256))
    redirect_uris: Mapped[list[Any]] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    """The registered metadata as answered to the client."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthCodeRow(Base):
    """An authorization code waiting for its exchange (single use: the exchange deletes it)."""

    __tablename__ = "oauth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(1024))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32))
    key_version: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(1024))
    scope: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OAuthRefreshTokenRow(Base):
    """A refresh token (by hash). Refreshing rotates it; presenting a rotated one revokes its whole family."""

    __tablename__ = "oauth_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    """Every token descended from one authorization code; access tokens name it too (`fam`)."""
    client_id: Mapped[str] = mapped_column(String(1024))
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    key_version: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(1024))
    scope: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class UpstreamTokenRow(Base):
    """One virtual key's OAuth token set for one upstream MCP server (flow `authorization_code`), encrypted."""

    __tablename__ = "upstream_oauth_tokens"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server: Mapped[str] = mapped_column(String(128), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """AES-256-GCM of the token set's JSON, bound to `<key_id>|<server>` (`toolpolicy.upstream_oauth.cipher`)."""
    version: Mapped[int] = mapped_column(Integer)
    """Bumped on every write: a refresh stores its result only over the version it refreshed (replicas race)."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UpstreamClientRow(Base):
    """The OAuth client the hub registered dynamically (RFC 7591) at an upstream server's authorization server."""

    __tablename__ = "upstream_oauth_clients"

    server: Mapped[str] = mapped_column(String(128), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(2048))
    """The authorization server it was registered at: a different one registers anew."""
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    """AES-256-GCM of the registration's JSON (client id and secret), bound to `client|<server>`."""
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RollupRow(Base):
    """Totals of the requests of one hour, record kind, key and target: what the dashboard's charts read.

    Rows are added to (never rewritten) by an upsert per writer batch (`toolpolicy.rollups`), so replicas writing
    the same hour sum up. `lat_00`..`lat_15` count requests per latency bucket (`rollups.LATENCY_BOUNDS_MS`).
    """

    __tablename__ = "request_rollups"
    __table_args__ = (Index("ix_request_rollups_grain_key_bucket", "grain", "key_name", "bucket"),)

    grain: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1: per key; 2: per target; 3: everything (`rollups.fold`)."""
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    """The hour (UTC) the requests started in."""
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    """The virtual key's name in grain 1 (empty for requests no key was resolved for); empty in grains 2 and 3."""
    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    """The model asked for, or `server/tool`, in grain 2; empty in grains 1 and 3."""
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_sum_ms: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 10), default=Decimal(0))
    cache_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    guardrail_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_00: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_01: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_02: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_03: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_04: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_05: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_06: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_07: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_08: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_09: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_10: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_11: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_12: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_13: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_14: Mapped[int] = mapped_column(BigInteger, default=0)
    lat_15: Mapped[int] = mapped_column(BigInteger, default=0)
