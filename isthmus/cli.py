"""The `isthmus` command: serve, check, import-claude, db upgrade, keys. The environment is read here and only here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from isthmus import __version__
from isthmus.logs import configure as configure_logging
from toolpolicy.config import ConfigError, load_config
from toolpolicy.errors import GatewayError
from toolpolicy.settings import GatewaySettings
from toolpolicy.store import Store
from toolpolicy.store.directory import Directory
from toolpolicy.store.schema import KeyRow
from toolpolicy.telemetry.tracing import setup_tracing

if TYPE_CHECKING:
    from toolpolicy.store.audit_log import ChainReport

CONFIG_ENV = "ISTHMUS_CONFIG"
LOG_LEVEL_ENV = "ISTHMUS_LOG_LEVEL"
METRICS_TOKEN_ENV = "ISTHMUS_METRICS_TOKEN"
OAUTH_KEY_ENV = "ISTHMUS_OAUTH_ENCRYPTION_KEY"


def _settings(path: str | None) -> tuple[GatewaySettings, str]:
    """The settings from `path` (or $ISTHMUS_CONFIG), or the defaults; and a description of where they came from.
    $ISTHMUS_METRICS_TOKEN gives `metrics_token` when the config does not, $ISTHMUS_OAUTH_ENCRYPTION_KEY
    `upstream_oauth.encryption_key`."""
    path = path or os.environ.get(CONFIG_ENV)
    settings, source = (load_config(path, environ=os.environ), path) if path else (GatewaySettings(), "")
    metrics_token = os.environ.get(METRICS_TOKEN_ENV)
    if metrics_token and settings.metrics_token is None:
        settings = settings.model_copy(update={"metrics_token": SecretStr(metrics_token)})
    oauth_key = os.environ.get(OAUTH_KEY_ENV)
    if oauth_key and settings.upstream_oauth.encryption_key is None:
        block = settings.upstream_oauth.model_copy(update={"encryption_key": SecretStr(oauth_key)})
        settings = settings.model_copy(update={"upstream_oauth": block})
    return settings, source or "no config file (defaults)"


def _server_options(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn options from the `server:` block: the guarded protocol, with a connection cap that fits the
    process's open-file limit."""
    from isthmus.http_guard import FD_RESERVE, fit_descriptor_limit, guarded_protocol

    limits = settings.server
    ceiling = fit_descriptor_limit(limits.max_connections)
    if ceiling is not None:
        fitting = max(1, ceiling - FD_RESERVE)
        print(
            f"isthmus: WARNING: the open-file limit ({ceiling}) cannot hold server.max_connections "
            f"({limits.max_connections}); capping connections at {fitting}",
            file=sys.stderr,
        )
        limits = limits.model_copy(update={"max_connections": fitting})
    return {"http": guarded_protocol(limits), "backlog": limits.backlog}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.workers < 1:
        raise GatewayError("--workers must be at least 1")
    settings, source = _settings(args.config)
    listen_host, _, listen_port = settings.listen.rpartition(":")
    host: str = args.host or listen_host
    port: int = args.port or int(listen_port)
    limits = settings.server
    admin_api = "on" if settings.admin_key and settings.admin_key.get_secret_value() else "off (no admin_key)"
    store = Store.open(settings.store)
    summary = ", ".join(
        [
            f"config: {source}",
            f"store: {store.url}",
            f"redis: {settings.redis or 'none (counters in process)'}",
            f"providers: {len(settings.providers)}",
            f"MCP servers: {len(settings.mcp_servers)}",
            f"keys in config: {len(settings.virtual_keys)}",
            f"admin API: {admin_api}",
            f"connections: at most {limits.max_connections}, headers within {limits.header_timeout:g}s",
        ]
    )
    print(f"isthmus {__version__} on http://{host}:{port} ({summary})", file=sys.stderr)
    from isthmus.migrate import migrate_apart

    migrate_apart(settings.store)  # so no serving process (nor the supervisor) holds Alembic
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        **_server_options(settings),
        "log_level": args.log_level,
        "log_config": None,  # keep the JSON handler configured in main()
        "access_log": False,
        # SIGTERM: stop accepting, let requests and streams finish for this long, then cancel them (docs/deploy.md)
        "timeout_graceful_shutdown": limits.drain_timeout,
        "lifespan": "on",
    }
    if args.workers > 1:
        if not settings.redis:
            print("isthmus: WARNING: --workers without redis: rate limits and budgets hold per worker", file=sys.stderr)
        # Migrate and seed once, here, so the workers do not race (and generated secrets are printed once).
        asyncio.run(_with_directory(args, _ready))
        if args.config:
            os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        os.environ[LOG_LEVEL_ENV] = args.log_level
        from isthmus import workers

        with contextlib.suppress(KeyboardInterrupt):
            workers.run(uvicorn.Config("isthmus.cli:worker_app", factory=True, workers=args.workers, **options))
        return 0
    # Imported here, not above: with --workers the supervisor never builds the app, and need not hold its modules.
    from isthmus.app import create_app
    from isthmus.lifecycle.server import GatewayServer

    _setup_tracing(settings)
    app = create_app(settings, freeze_after_start=True, reload_from=_reloader(args.config), own_process=True)
    GatewayServer(uvicorn.Config(app, **options)).run()
    return 0


async def _ready(directory: Directory) -> int:
    return 0


def worker_app() -> Any:
    """The app of one `--workers` process: uvicorn calls this in each worker (settings come from the env)."""
    from isthmus.app import create_app

    configure_logging(os.environ.get(LOG_LEVEL_ENV, "info"))
    settings, _ = _settings(None)
    _setup_tracing(settings)
    return create_app(settings, freeze_after_start=True, reload_from=_reloader(None), own_process=True)


def _reloader(path: str | None) -> Callable[[], GatewaySettings] | None:
    """What a reload reads: the config file the gateway started with (none: nothing to reload)."""
    path = path or os.environ.get(CONFIG_ENV)
    return (lambda: _settings(path)[0]) if path else None


def _setup_tracing(settings: GatewaySettings) -> None:
    telemetry = settings.telemetry
    setup_tracing(
        endpoint=telemetry.otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        service_name=os.environ.get("OTEL_SERVICE_NAME", telemetry.service_name),
        headers={name: value.get_secret_value() for name, value in telemetry.otlp_headers.items()},
        sample_ratio=telemetry.sample_ratio,
    )


def _connect(args: argparse.Namespace) -> int:
    import anyio

    from mcp_hub.bridge import run_bridge

    key = args.key or os.environ.get("ISTHMUS_API_KEY")
    if not key:
        raise GatewayError("give the virtual key with --key or $ISTHMUS_API_KEY")
    anyio.run(run_bridge, args.url, key)
    return 0


def _check(args: argparse.Namespace) -> int:
    settings, source = _settings(args.config)
    print(
        f"{source}: OK ({len(settings.providers)} providers, {len(settings.mcp_servers)} MCP servers, "
        f"{len(settings.customers)} customers, {len(settings.teams)} teams, {len(settings.virtual_keys)} keys)"
    )
    return 0


def _import_claude(args: argparse.Namespace) -> int:
    from isthmus.claude_import import import_claude_file

    print(import_claude_file(args.path), end="")
    return 0


async def _with_directory(args: argparse.Namespace, action: Callable[[Directory], Awaitable[int]]) -> int:
    settings, _ = _settings(args.config)
    store = Store.open(settings.store)
    try:
        await store.migrate()
        names = [rule.name for rule in settings.guardrails]
        directory = Directory(store, mcp_servers=settings.mcp_servers.keys(), guardrails=names)
        for name, secret in await directory.seed(settings):
            print(f"generated key {name!r} from the config: {secret}  (shown once)", file=sys.stderr)
        return await action(directory)
    finally:
        await store.close()


def _db_upgrade(args: argparse.Namespace) -> int:
    async def report(directory: Directory) -> int:
        print(f"store {directory.store.url} is at revision {await directory.store.revision()}")
        return 0

    return asyncio.run(_with_directory(args, report))


def _print_key(record: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(record, indent=2))
        return
    owner = f"team {record['team']}" if record.get("team") else f"customer {record.get('customer') or '-'}"
    state = "active" if record["active"] else "revoked" if record.get("revoked_at") else "inactive"
    print(f"{record['name']}\t{record['key_prefix']}…\t{owner}\t{state}\tmodels={','.join(record['models']) or '-'}")
    if "key" in record:
        print(f"secret (shown once, store it now): {record['key']}")


def _keys(args: argparse.Namespace) -> int:
    async def run(directory: Directory) -> int:
        if args.keys_command == "create":
            data: dict[str, Any] = {"name": args.name, "models": args.model or []}
            if args.team:
                data["team"] = args.team
            if args.customer:
                data["customer"] = args.customer
            if args.expires_at:
                data["expires_at"] = args.expires_at
            if args.mcp:
                data["mcp"] = _parse_mcp(args.mcp)
            if args.budget:
                data["budgets"] = [_parse_budget(text) for text in args.budget]
            if args.requests or args.tokens:
                data["rate_limit"] = {"requests": args.requests, "tokens": args.tokens}
            record, secret = await directory.create_key(data)
            _print_key({**record, "key": secret}, args)
        elif args.keys_command == "list":
            records: list[dict[str, Any]] = []
            after = None
            while page := await directory.page(KeyRow, limit=500, after=after):
                if args.json:
                    records.extend(page)  # one JSON array, not one document per key
                else:
                    for record in page:
                        _print_key(record, args)
                after = page[-1]["name"]
            if args.json:
                print(json.dumps(records, indent=2))
        elif args.keys_command == "revoke":
            _print_key(await directory.revoke_key(args.name), args)
        elif args.keys_command == "rotate":
            record, secret = await directory.rotate_key(args.name)
            _print_key({**record, "key": secret}, args)
        return 0

    return asyncio.run(_with_directory(args, run))


def _audit(args: argparse.Namespace) -> int:
    from toolpolicy.audit_export import export_lines
    from toolpolicy.store.audit_log import AuditLog, AuditQuery

    async def run(directory: Directory) -> int:
        log = AuditLog(directory.store)
        if args.audit_command == "verify":
            return _print_verification(await log.verify())
        if args.audit_command == "prune":
            print(f"pruned {await log.prune(args.days)} records older than {args.days} days")
            return 0
        query = AuditQuery(since=_instant(args.since, "--since"), until=_instant(args.until, "--until"))
        async for line in export_lines(log.export(query), args.format):
            sys.stdout.write(line)
        return 0

    return asyncio.run(_with_directory(args, run))


def _print_verification(report: ChainReport) -> int:
    emissions = report.emissions
    if report.broken_seq is not None:
        print(f"audit chain BROKEN at record {report.broken_seq}: {report.problem}", file=sys.stderr)
        return 1
    print(f"audit chain OK: {report.checked} records (seq {report.first_seq}..{report.last_seq})")
    if emissions is None:
        return 0
    print(
        f"emissions: {emissions.writers} writer(s), {emissions.quarantined} quarantined record(s) "
        f"(kind=quarantined, originals escaped in details.quarantine), {emissions.duplicates} written twice"
    )
    for item in emissions.unconfirmed:
        print(f"unconfirmed: {item.describe()}", file=sys.stderr)
    if emissions.missing:
        print(f"audit records MISSING: {report.problem}", file=sys.stderr)
        return 1
    return 0


def _instant(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise GatewayError(f"{option} {text!r} must be an ISO 8601 time, e.g. 2026-11-25T00:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_mcp(entries: Sequence[str]) -> dict[str, list[str]]:
    """`docs=search_*,get_page` -> {"docs": ["search_*", "get_page"]}."""
    allowlist: dict[str, list[str]] = {}
    for entry in entries:
        server, sep, globs = entry.partition("=")
        if not sep or not server:
            raise GatewayError(f"--mcp {entry!r} must be SERVER=GLOB[,GLOB...], e.g. docs=search_*,get_page")
        allowlist.setdefault(server, []).extend(glob for glob in globs.split(",") if glob)
    return allowlist


def _parse_budget(text: str) -> dict[str, Any]:
    """`50/1M` -> {"max_usd": 50, "period": "1M"}; `5` is a lifetime cap; `10/1d/rolling` a rolling one."""
    amount, _, rest = text.partition("/")
    period, _, rolling = rest.partition("/")
    if rolling not in ("", "rolling"):
        raise GatewayError(f"--budget {text!r} must be USD[/PERIOD[/rolling]], e.g. 50/1M or 10/1d/rolling")
    budget: dict[str, Any] = {"max_usd": amount, "period": period or None}
    if rolling:
        budget["rolling"] = True
    return budget


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isthmus", description="MCP tool gateway and LLM proxy.")
    parser.add_argument("--version", action="version", version=f"isthmus {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(sub: argparse.ArgumentParser, *, required: bool = False) -> argparse.ArgumentParser:
        sub.add_argument("--config", "-c", required=required, help=f"config file (default: ${CONFIG_ENV}, or none)")
        return sub

    serve = with_config(commands.add_parser("serve", help="run the gateway"))
    serve.add_argument("--host", help="interface to listen on (overrides 'listen')")
    serve.add_argument("--port", type=int, help="port to listen on (overrides 'listen')")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (use with redis)")
    serve.set_defaults(handler=_serve)

    with_config(commands.add_parser("check", help="validate a config file"), required=True).set_defaults(handler=_check)

    connect = commands.add_parser("connect", help="stdio-to-HTTP bridge: serve the gateway's /mcp to a stdio client")
    connect.add_argument("--key", help="virtual key (default: $ISTHMUS_API_KEY)")
    connect.add_argument("--url", default="http://127.0.0.1:8080/mcp", help="the gateway's MCP endpoint")
    connect.set_defaults(handler=_connect)

    claude = commands.add_parser("import-claude", help="print mcp_servers from a Claude Desktop or Cursor config")
    claude.add_argument("path")
    claude.set_defaults(handler=_import_claude)

    db = commands.add_parser("db", help="store maintenance").add_subparsers(dest="db_command", required=True)
    with_config(db.add_parser("upgrade", help="apply pending migrations")).set_defaults(handler=_db_upgrade)

    keys = commands.add_parser("keys", help="manage virtual keys in the store")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = with_config(key_commands.add_parser("create", help="create a key and print its secret once"))
    create.add_argument("name")
    create.add_argument("--team")
    create.add_argument("--customer")
    create.add_argument("--model", action="append", help="allowed model glob, e.g. 'openai/*' (repeatable)")
    create.add_argument("--mcp", action="append", help="SERVER=GLOB[,GLOB...] allowed tools (repeatable)")
    create.add_argument("--expires-at", help="ISO 8601 instant, e.g. 2027-01-01T00:00:00Z")
    create.add_argument("--budget", action="append", help="USD[/PERIOD[/rolling]] spend cap, e.g. 50/1M (repeatable)")
    create.add_argument("--requests", help="request rate limit, e.g. 600/1m")
    create.add_argument("--tokens", help="token rate limit, e.g. 100000/1h")
    with_config(key_commands.add_parser("list", help="list keys"))
    for verb in ("revoke", "rotate"):
        with_config(key_commands.add_parser(verb, help=f"{verb} a key")).add_argument("name")
    for sub in key_commands.choices.values():
        sub.add_argument("--json", action="store_true", help="print JSON")
    keys.set_defaults(handler=_keys)

    audit = commands.add_parser("audit", help="verify, export and prune the audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    with_config(audit_commands.add_parser("verify", help="check the hash chain; names the first broken record"))
    export = with_config(audit_commands.add_parser("export", help="write records to stdout, oldest first"))
    export.add_argument("--since", help="ISO 8601 instant (UTC if no offset)")
    export.add_argument("--until", help="ISO 8601 instant (UTC if no offset)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    prune = with_config(audit_commands.add_parser("prune", help="delete records older than --days"))
    prune.add_argument("--days", type=float, required=True)
    audit.set_defaults(handler=_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(getattr(args, "log_level", "warning"))
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (GatewayError, ValueError, OSError) as exc:
        message = exc.message if isinstance(exc, GatewayError) else str(exc)
        print(f"isthmus {args.command}: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
