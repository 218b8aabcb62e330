"""The gateway's configuration, as pydantic models.

This is the user-facing contract of `isthmus.yaml`. The models only describe and validate; reading the file and the
environment happens at the edge (`toolpolicy.config`), so these models never see `os.environ`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from toolpolicy.audit_settings import AuditSettings as AuditSettings
from toolpolicy.bundles import McpBundleSettings, bundle_problems
from toolpolicy.cache_settings import CacheSettings, KeyCacheSetting
from toolpolicy.guardrails.settings import GuardrailRefs, GuardrailSettings, guardrail_problems
from toolpolicy.key_caps import McpKeyCapOverrides, McpKeyCaps
from toolpolicy.limits import BudgetPeriod, parse_rate
from toolpolicy.oauth.settings import OAuthSettings
from toolpolicy.provider_settings import ProviderKey as ProviderKey, ProviderSettings as ProviderSettings
from toolpolicy.sampling_settings import SamplingSettings, sampling_problems
from toolpolicy.server_settings import ServerSettings
from toolpolicy.store_schema import search_path
from toolpolicy.stream_resume import McpStreamResume
from toolpolicy.telemetry_settings import TelemetrySettings
from toolpolicy.tool_overrides import ToolOverride
from toolpolicy.ui_settings import UiSettings
from toolpolicy.upstream_oauth.settings import UpstreamAuth, UpstreamOAuthSettings

SERVER_NAME = re.compile(r"^[a-z0-9-]+$")
ENTITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _entity_name(value: str) -> str:
    if not ENTITY_NAME.match(value):
        raise ValueError(
            "must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


EntityName = Annotated[str, AfterValidator(_entity_name)]


DEFAULT_REDIS_PREFIX = "isthmus:"
REDIS_PREFIX = re.compile(r"[^\s\x00-\x1f\x7f-\x9f]{1,64}")
"""What `redis_prefix` may be: 1-64 characters, none of them whitespace or a control character."""
CACHE_SUFFIX = "cache:"
"""What follows `redis_prefix` in the cache's own prefix when `cache.redis_prefix` is not set."""

_TOOL_GLOB = re.compile(r"^[^\s\x00-\x1f]{1,256}$")


def _tool_glob(value: str) -> str:
    if not _TOOL_GLOB.match(value):
        raise ValueError("a tool glob is 1-256 characters without spaces or control characters, e.g. 'fixture__*'")
    return value


class _Model(BaseModel):
    # Every number is finite: `.inf` in YAML or `1e309` anywhere is a config (or admin API) error naming the field.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class Budget(_Model):
    """A spend cap in USD over a period."""

    max_usd: float = Field(gt=0, le=1_000_000_000)
    """The most that may be spent in one period, in US dollars (at most a billion: counters hold nano-dollars)."""
    period: BudgetPeriod | None = None
    """`1h`, `1d`, `1w`, `1M`, or null for a lifetime cap."""
    rolling: bool = False
    """Count a rolling window of the period's length instead of resetting on UTC calendar boundaries."""

    @model_validator(mode="after")
    def _rolling_needs_period(self) -> Budget:
        if self.rolling and self.period is None:
            raise ValueError("rolling needs a period")
        return self


def _rate(value: str) -> str:
    parse_rate(value)
    return value


Rate = Annotated[str, AfterValidator(_rate)]
"""A rate as `COUNT/WINDOW`, e.g. `600/1m`, `100000/1h` (windows: s, m, h, d)."""


class RateLimit(_Model):
    """Requests and tokens per window for LLM traffic."""

    requests: Rate | None = None
    """Requests per window, e.g. `600/1m`."""
    tokens: Rate | None = None
    """Input plus output tokens per window, e.g. `100000/1h`."""


class McpRateLimit(_Model):
    """Tool calls per window for MCP traffic, and what of the hub the key may hold at once."""

    calls: Rate | None = None
    """Tool calls per window across every server, e.g. `120/1m`."""
    per_server: dict[str, Rate] = Field(default_factory=dict)
    """Tool calls per window for one server, by server name."""
    concurrency: McpKeyCapOverrides | None = None
    """This key's own caps on sessions, listen streams and Code Mode runs held at once (replacing `mcp.per_key`)."""


class McpServerSettings(_Model):
    """An upstream MCP server: Claude Desktop's `mcpServers` entry shape, plus remote servers."""

    command: str | None = None
    """Executable of a stdio server."""
    args: list[str] = Field(default_factory=list)
    """Arguments of a stdio server."""
    env: dict[str, SecretStr] = Field(default_factory=dict)
    """Environment of a stdio server (added to a minimal inherited environment)."""
    cwd: str | None = None
    """Working directory of a stdio server."""
    url: str | None = None
    """URL of a remote server."""
    transport: Literal["streamable-http", "sse"] | None = None
    """Remote transport: `streamable-http` (default) or the legacy `sse`."""
    type: Literal["stdio", "http", "streamable-http", "sse"] | None = None
    """Accepted for configs pasted from Claude Code or Cursor; `http` means `streamable-http`."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """HTTP headers sent to a remote server, e.g. its Authorization."""
    auth: UpstreamAuth | None = None
    """How the hub authenticates to a remote server: `{type: headers, headers: {...}}` for static tokens, or
    `{type: oauth, flow: client_credentials | authorization_code, ...}` (`toolpolicy.upstream_oauth.settings`)."""
    tools: list[str] = Field(default_factory=lambda: ["*"])
    """Globs of the tools the gateway exposes at all from this server."""
    overrides: dict[str, ToolOverride] = Field(default_factory=dict)
    """Name, description and annotations clients see instead of the upstream's, by the upstream's tool name."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds a tool call may take, not counting the time its client takes to answer the server's sampling or
    elicitation requests (those are bounded by `elicitation_timeout`)."""
    elicitation_timeout: float | None = Field(default=None, gt=0)
    """Seconds the hub waits for a client (or the person behind it) to answer one sampling or elicitation request
    this server sends during a call; null uses `mcp.elicitation_timeout`."""
    enabled: bool = True
    """A disabled server is not started nor listed."""
    code_mode: bool = False
    """Serve this server's tools through Code Mode's meta-tools instead of listing them directly."""
    cost_per_call_usd: float = Field(default=0.0, ge=0)
    """USD charged to budgets for each tool call."""
    protocol: Literal["auto", "legacy"] = "auto"
    """How the hub talks to this server: `auto` uses 2026-07-28 when the server offers it and the 2025 handshake
    otherwise; `legacy` always uses the handshake (for servers that mishandle `server/discover`)."""
    sampling: SamplingSettings | None = None
    """Whether the gateway answers this server's sampling requests with its own LLM models (`sampling_settings`);
    null relays them to the calling client only."""
    fast_path: bool = True
    """Send this server's `tools/call` requests without the MCP SDK's client: over a raw pooled HTTP client
    (Streamable HTTP servers), or written straight to the process's stdin with its answer taken off stdout by id
    (stdio servers); same wire, same results, less overhead. False always uses the SDK's client."""
    guardrails: list[str] = Field(default_factory=list, max_length=64)
    """Guardrail rules (by name) applied to every call to this server, whatever the key."""

    @model_validator(mode="after")
    def _one_kind(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of 'command' (a stdio server) or 'url' (a remote server)")
        if self.command is not None and (self.transport == "sse" or self.type in ("http", "streamable-http", "sse")):
            raise ValueError("'transport'/'type' name a remote transport but this server has a 'command'")
        if self.url is not None and self.type == "stdio":
            raise ValueError("'type: stdio' needs a 'command', not a 'url'")
        if self.auth is not None and self.url is None:
            raise ValueError("'auth' applies to remote servers (with a 'url') only")
        if self.auth is not None and self.auth.type == "oauth" and self.auth.flow == "authorization_code":
            if self.remote_transport != "streamable-http":
                raise ValueError("OAuth flow 'authorization_code' needs transport 'streamable-http' (a token per key)")
        return self

    @property
    def remote_transport(self) -> Literal["streamable-http", "sse"] | None:
        """The transport of a remote server, or None for a stdio server."""
        if self.url is None:
            return None
        if self.transport is not None:
            return self.transport
        return "sse" if self.type == "sse" else "streamable-http"


class McpHubSettings(_Model):
    """Hub-wide options of the MCP hub (the `mcp:` block)."""

    refresh_interval: float = Field(default=300.0, ge=0)
    """Seconds between re-listings of each upstream's tools, resources and prompts; 0 relies on change notices."""
    connect_timeout: float = Field(default=20.0, gt=0)
    """Seconds an upstream may take to connect and answer its first listing before the attempt counts as failed."""
    backoff_initial: float = Field(default=0.5, gt=0)
    """Seconds before the first reconnection (or restart of a stdio server); doubled after each failed attempt."""
    backoff_max: float = Field(default=30.0, gt=0)
    """Longest wait between two reconnection attempts, in seconds."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted on `/mcp` and the REST routes; larger bodies get 413."""
    max_upstream_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest single message (one stdout line) accepted from a stdio upstream; longer lines are discarded."""
    page_size: int | None = Field(default=None, ge=1)
    """Items per page of `tools/list`, `resources/list`, `prompts/list`...; null sends everything in one page."""
    allowed_hosts: list[str] | None = None
    """`Host` headers `/mcp` accepts (`host` or `host:*`), against DNS rebinding; null derives them from `listen`,
    `["*"]` accepts any."""
    allowed_origins: list[str] | None = None
    """`Origin` headers `/mcp` accepts (`http://host:*`); null derives them from `allowed_hosts`."""
    session_idle_timeout: float = Field(default=1800.0, gt=0)
    """Seconds after which an idle legacy (2025-era) client session is closed."""
    max_sessions: int = Field(default=10_000, ge=1)
    """Legacy client sessions open at once; past this, new sessions get 503."""
    resume: McpStreamResume = Field(default_factory=McpStreamResume)
    """Replay of missed SSE events to a legacy client that reconnects with `Last-Event-ID` (any replica with Redis)."""
    per_key: McpKeyCaps = Field(default_factory=McpKeyCaps)
    """What one key may hold at once of the hub's sessions, listen streams and Code Mode sandbox workers."""
    elicitation_timeout: float = Field(default=600.0, gt=0)
    """Seconds the hub waits for a client to answer one sampling or elicitation request relayed from an upstream
    (a person may be filling in a form), unless the server sets its own; the call's `timeout` is paused meanwhile."""
    key_watch_interval: float = Field(default=5.0, gt=0)
    """Seconds between checks of connected clients' keys, so an allowlist change reaches them as a list change."""
    fast_path: bool = True
    """Serve 2026-07-28 `tools/call` and `tools/list` requests without the SDK's transport machinery (same answers,
    audit and governance, less overhead; `mcp_hub/fastpath`); false leaves every request to the SDK."""


class CodeModeSettings(_Model):
    """Limits of Code Mode's `run_code` sandbox (the `code_mode:` block); each run gets them all."""

    wall_timeout: float = Field(default=30.0, gt=0)
    """Seconds one run may take in all: waiting for a worker, executing, and waiting on tool calls."""
    execution_timeout: float = Field(default=10.0, gt=0)
    """Seconds of Python execution one run may use; time spent waiting on tool calls is not counted."""
    max_memory_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    """Heap memory one run may use, in bytes."""
    max_tool_calls: int = Field(default=50, ge=1)
    """Tool calls one run may make; the call past this ends the run."""
    max_output_bytes: int = Field(default=64 * 1024, ge=256)
    """Size at which the run's result (as JSON) and its printed output are each cut, with a note saying so."""
    max_code_bytes: int = Field(default=100_000, ge=256)
    """Largest program `run_code` accepts, in bytes of UTF-8."""
    workers: int = Field(default=4, ge=1)
    """Sandbox worker processes at most, so runs at once; further runs wait for a free worker (within
    `wall_timeout`)."""
    warm_workers: int = Field(default=1, ge=0)
    """Worker processes started ahead of the first run and kept ready."""


class CustomerSettings(_Model, GuardrailRefs):
    """A customer: the top of the governance hierarchy."""

    name: EntityName
    """Unique name."""
    budgets: list[Budget] = Field(default_factory=list)
    """Spend caps that apply to every team and key of this customer."""
    cache: KeyCacheSetting = None
    """The response cache for this customer's keys, unless their team or the key itself sets one: null follows the
    gateway's `cache`, true too, false turns it off, `{ttl: 10m}` sets the time to live of the entries they write."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data kept with the customer."""


class TeamSettings(_Model, GuardrailRefs):
    """A team, optionally inside a customer."""

    name: EntityName
    """Unique name."""
    customer: str | None = None
    """Name of the customer this team belongs to."""
    budgets: list[Budget] = Field(default_factory=list)
    """Spend caps that apply to every key of this team."""
    cache: KeyCacheSetting = None
    """The response cache for this team's keys, unless the key itself sets one: null follows the customer's (then
    the gateway's) `cache`, true follows the gateway's, false turns it off, `{ttl: 10m}` sets the time to live of
    the entries they write."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data kept with the team."""


class AgentSettings(_Model):
    """Agent mode (a key's `agent:` block): the gateway offers MCP tools to the key's model calls and runs the ones
    the model asks for, looping until the model answers (docs/agent-mode.md)."""

    tools: list[Annotated[str, AfterValidator(_tool_glob)]] = Field(min_length=1, max_length=256)
    """Globs over the hub's `<server>__<tool>` names (as `/mcp` names them) offered to the model; the key's `mcp`
    allowlist still applies, so a tool it does not allow is never offered, whatever the globs say."""
    max_steps: int = Field(default=8, ge=1, le=64)
    """Model calls one request may make at most; when the last one still asks for tools, the answer says the
    limit was reached."""
    parallel: bool = True
    """Run the tool calls one model turn asks for concurrently; false runs them one after another, in order."""


class VirtualKeySettings(_Model, GuardrailRefs):
    """A virtual key: what a caller presents, and what it may do."""

    name: EntityName
    """Unique name, used in logs, audit records and the admin API."""
    team: str | None = None
    """Name of the team this key belongs to."""
    customer: str | None = None
    """Name of the customer this key belongs to directly (when it has no team)."""
    value: SecretStr | None = None
    """The secret callers present; omit to have one generated and printed once."""
    active: bool = True
    """An inactive key is refused."""
    expires_at: datetime | None = None
    """After this instant the key is refused."""
    models: list[str] = Field(default_factory=list)
    """Globs over `provider/model` (or alias names) the key may use; empty means none."""
    mcp: dict[str, list[str]] = Field(default_factory=dict)
    """Tool globs by MCP server; a server not named gives nothing, `"*"` gives every tool."""
    budgets: list[Budget] = Field(default_factory=list)
    """Spend caps of this key."""
    provider_budgets: dict[str, list[Budget]] = Field(default_factory=dict)
    """Spend caps of this key on one provider, by provider name."""
    rate_limit: RateLimit | None = None
    """Requests and tokens per window for this key's LLM traffic."""
    provider_rate_limits: dict[str, RateLimit] = Field(default_factory=dict)
    """Requests and tokens per window for this key on one provider."""
    mcp_rate_limit: McpRateLimit | None = None
    """Tool calls per window for this key."""
    code_mode: bool | None = None
    """Force Code Mode on or off for this key's MCP clients; null follows each server's setting."""
    agent: AgentSettings | None = None
    """Agent mode: MCP tools the gateway runs inside this key's chat and Messages requests; null is off."""
    cache: KeyCacheSetting = None
    """The response cache for this key: null follows its team's, then its customer's, then the gateway's `cache`;
    true follows the gateway's, false turns it off, `{ttl: 10m}` sets the time to live of the entries it writes."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data kept with the key."""

    @model_validator(mode="after")
    def _one_owner(self) -> VirtualKeySettings:
        if self.team is not None and self.customer is not None:
            raise ValueError("a key belongs to a team or directly to a customer, not both")
        return self


class ModelAliasSettings(_Model):
    """A model name that stands for an ordered list of `provider/model` targets."""

    targets: list[str] = Field(min_length=1)
    """`provider/model` targets, tried in order: the next one gets its turn when one fails."""


class LlmSettings(_Model):
    """How the LLM proxy talks to providers: retries, circuit breaking, timeouts and size caps."""

    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries of one target on 429, 5xx and connection errors, before the next target is tried."""
    backoff_initial: float = Field(default=0.5, gt=0)
    """Seconds before the first retry; doubled at each retry, with jitter."""
    backoff_max: float = Field(default=8.0, gt=0)
    """Longest wait before a retry, in seconds; a provider's Retry-After longer than this moves to the next target."""
    connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to open a connection to a provider."""
    read_timeout: float = Field(default=300.0, gt=0)
    """Seconds a provider may stay silent while answering (between two reads)."""
    total_timeout: float = Field(default=600.0, gt=0)
    """Seconds one attempt may take in all, streams included."""
    max_request_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body accepted from a client; larger bodies get 413."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Largest response accepted from a provider; a larger one is cut off and answered with 502."""
    key_cooldown: float = Field(default=60.0, ge=0)
    """Seconds a provider key that got 401 or 403 stays out of rotation."""
    breaker_failures: int = Field(default=5, ge=1)
    """Consecutive failures after which a provider or a key is skipped (the circuit opens)."""
    breaker_cooldown: float = Field(default=30.0, gt=0)
    """Seconds an open circuit skips its provider or key before one probe request is let through."""
    max_connections: int = Field(default=512, ge=1)
    """Open connections to all providers together (one shared keep-alive pool)."""
    models_refresh: float = Field(default=600.0, ge=0, le=7 * 86400)
    """Seconds between two fetches of the model listing of a provider configured without `models:` (its upstream's
    `GET /models`, in the background); 0 never fetches. A failed fetch keeps the last good listing (else the kind's
    default models) and is tried again sooner, from 15 s doubling up to this interval."""
    models_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds one model listing fetch (all its pages) may take before it counts as failed."""


class PriceSettings(_Model):
    """A model's price in USD per million tokens."""

    input: float = Field(ge=0)
    """Input tokens."""
    output: float = Field(ge=0)
    """Output tokens."""
    cached_input: float | None = Field(default=None, ge=0)
    """Cached input tokens; null means the input price."""
    max_output: int | None = Field(default=None, ge=0)
    """The model's output token limit, used for the worst case when a request sets no `max_tokens`."""


class GatewaySettings(_Model):
    """The whole gateway configuration."""

    listen: str = "127.0.0.1:8080"
    """`HOST:PORT` the gateway serves on."""
    store: str = "sqlite+aiosqlite:///./isthmus.db"
    """SQLAlchemy URL of the store; `postgresql+asyncpg://…` to share state between replicas, with
    `?search_path=schema` to keep the gateway's tables in a schema of their own."""
    redis: str | None = None
    """Redis URL for counters and 2025-era MCP sessions shared between replicas; null keeps both in process."""
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    """What every Redis key and pub/sub channel of this gateway starts with (counters, shared sessions, breakers,
    and the cache unless `cache.redis_prefix` is set): 1-64 characters without whitespace or control characters.
    Give each deployment sharing one Redis its own, none a prefix of another's, e.g. `prod:isthmus:`."""
    admin_key: SecretStr | None = None
    """Bearer token of the `/admin` API; with none, the admin API refuses every request."""
    metrics_token: SecretStr | None = None
    """Bearer token that opens `/metrics` only (the admin key opens it too); with neither, `/metrics` answers 401."""
    admin_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body the `/admin` API accepts; larger bodies get 413."""
    authorize_max_body_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request body `/v1/authorize` accepts; larger bodies get 413."""
    key_cache_ttl: float = Field(default=5.0, ge=0)
    """Seconds a resolved virtual key is cached: the bound on how late other replicas see a revocation."""
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    """LLM providers by name."""
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    """Upstream MCP servers by name (`[a-z0-9-]+`)."""
    mcp_bundles: dict[str, McpBundleSettings] = Field(default_factory=dict)
    """Curated MCP servers by name, each served at `/mcp/<bundle>` (`toolpolicy.bundles`)."""
    mcp: McpHubSettings = Field(default_factory=McpHubSettings)
    """MCP hub settings: refresh, reconnection, size caps, allowed hosts."""
    code_mode: CodeModeSettings = Field(default_factory=CodeModeSettings)
    """Code Mode sandbox limits (servers opt in with `mcp_servers.<name>.code_mode`)."""
    customers: list[CustomerSettings] = Field(default_factory=list)
    """Customers seeded into the store at start."""
    teams: list[TeamSettings] = Field(default_factory=list)
    """Teams seeded into the store at start."""
    virtual_keys: list[VirtualKeySettings] = Field(default_factory=list)
    """Virtual keys seeded into the store at start."""
    audit: AuditSettings = Field(default_factory=AuditSettings)
    """Audit trail settings."""
    ui: UiSettings = Field(default_factory=UiSettings)
    """The web dashboard at `/ui`."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """Tracing."""
    pricing: dict[str, PriceSettings] = Field(default_factory=dict)
    """Prices by `provider/model` (globs allowed), added to or overriding the shipped table."""
    unpriced: Literal["allow", "deny"] = "allow"
    """A model with no price: `allow` counts it as $0 (with a warning), `deny` refuses it when budgets apply."""
    on_counter_store_error: Literal["deny", "allow"] = "deny"
    """When Redis is unreachable: `deny` answers 503, `allow` falls back to counters in this process."""
    reservation_ttl: float = Field(default=600.0, gt=0)
    """Seconds a request's reservation is held at most (a replica that dies mid-request frees it after this)."""
    models: dict[str, ModelAliasSettings] = Field(default_factory=dict)
    """Model aliases by name, e.g. `fast: {targets: [openai/gpt-4o-mini, anthropic/claude-haiku-4-5]}`."""
    llm: LlmSettings = Field(default_factory=LlmSettings)
    """LLM proxy settings: retries, circuit breaking, timeouts, size caps."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """Client connection limits of `isthmus serve`: header and body timeouts, connection and request caps."""
    cache: CacheSettings | None = None
    """The response cache (`docs/cache.md`); null means no cache."""
    guardrails: list[GuardrailSettings] = Field(default_factory=list, max_length=256)
    """Content rules (secrets, PII, regex, injection) on model and tool traffic; see docs/guardrails.md."""
    oauth: OAuthSettings | None = None
    """OAuth 2.1 on `/mcp` (docs/oauth.md): the built-in authorization server and trusted IdPs; null: keys only."""
    upstream_oauth: UpstreamOAuthSettings = Field(default_factory=UpstreamOAuthSettings)
    """Upstream OAuth: the public URL its links are built on, the key that encrypts stored token sets."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _redis_prefix(cls, value: str) -> str:
        if not REDIS_PREFIX.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a usable prefix: 1-64 characters without whitespace or control characters, "
                "e.g. 'staging:isthmus:'"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _cache_prefix_follows(cls, data: Any) -> Any:
        """`cache.redis_prefix`, when not set, is `<redis_prefix>cache:` (today's `isthmus:cache:` by default)."""
        if not isinstance(data, dict) or data.get("cache") is None:
            return data
        prefix = data.get("redis_prefix", DEFAULT_REDIS_PREFIX)
        if not isinstance(prefix, str) or not REDIS_PREFIX.fullmatch(prefix):
            return data  # the field's own validator names the problem
        cache = data["cache"]
        if isinstance(cache, dict) and "redis_prefix" not in cache:
            return {**data, "cache": {**cache, "redis_prefix": prefix + CACHE_SUFFIX}}
        if isinstance(cache, CacheSettings) and "redis_prefix" not in cache.model_fields_set:
            return {**data, "cache": cache.model_copy(update={"redis_prefix": prefix + CACHE_SUFFIX})}
        return data

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        search_path(value)  # a malformed `?search_path=` is named here, not at the first connection
        return value

    @field_validator("mcp_servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServerSettings]) -> dict[str, McpServerSettings]:
        for name in value:
            if not SERVER_NAME.match(name) or "__" in name:
                raise ValueError(f"server name {name!r} must be lowercase letters, digits and single '-'")
        return value

    @model_validator(mode="after")
    def _model_aliases(self) -> GatewaySettings:
        problems: list[str] = []
        for alias, settings in self.models.items():
            if "/" in alias or not alias:
                problems.append(f"models.{alias}: an alias name may not contain '/' (that is how targets are named)")
            for index, target in enumerate(settings.targets):
                provider, sep, model = target.partition("/")
                if not sep or not model:
                    problems.append(f"models.{alias}.targets[{index}]: {target!r} is not 'provider/model'")
                elif provider not in self.providers:
                    problems.append(f"models.{alias}.targets[{index}]: no provider named {provider!r} in providers")
        if problems:
            raise ReferenceProblems(problems)
        return self

    @model_validator(mode="after")
    def _references(self) -> GatewaySettings:
        problems: list[str] = []
        for field in ("customers", "teams", "virtual_keys"):
            seen: set[str] = set()
            for index, entity in enumerate(getattr(self, field)):
                if entity.name in seen:
                    problems.append(f"{field}[{index}].name: duplicate name {entity.name!r}")
                seen.add(entity.name)
        customers = {c.name for c in self.customers}
        teams = {t.name for t in self.teams}
        for index, team in enumerate(self.teams):
            if team.customer is not None and team.customer not in customers:
                problems.append(f"teams[{index}].customer: no customer named {team.customer!r} in customers")
        for index, key in enumerate(self.virtual_keys):
            if key.team is not None and key.team not in teams:
                problems.append(f"virtual_keys[{index}].team: no team named {key.team!r} in teams")
            if key.customer is not None and key.customer not in customers:
                problems.append(f"virtual_keys[{index}].customer: no customer named {key.customer!r} in customers")
            problems.extend(
                f"virtual_keys[{index}].mcp.{server}: no MCP server named {server!r}"
                for server in key.mcp
                if server not in self.mcp_servers
            )
            problems.extend(
                f"virtual_keys[{index}].{field}.{provider}: no provider named {provider!r}"
                for field in ("provider_budgets", "provider_rate_limits")
                for provider in getattr(key, field)
                if provider not in self.providers
            )
        problems.extend(bundle_problems(self.mcp_servers, self.mcp_bundles))
        problems.extend(sampling_problems(self.mcp_servers, self.models, self.providers))
        problems.extend(guardrail_problems(self))
        if problems:
            raise ReferenceProblems(problems)
        return self


class ReferenceProblems(ValueError):
    """Cross-reference problems, each already prefixed with its config path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
