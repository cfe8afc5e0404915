"""`gemgate vkeys …` and `gemgate usage`: virtual keys and usage reports, from the command line.

Both work on the gateway's store directly — the SQLite file (the path from --db, or from the
configuration's ledger.path) or the configured PostgreSQL — so they work whether the gateway is
running or not; a running gateway sees key changes within `ledger.key_refresh_s` (1 s by
default).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from gemgate.access.budgets import KINDS, Budgets, limit_of
from gemgate.access.store import KeyConflict, KeyInvalid, KeyNotFound, KeyStore
from gemgate.access.vkeys import VirtualKey
from gemgate.backends import Backends
from gemgate.config import ConfigError, Settings, load_settings
from gemgate.ledger import report as reports
from gemgate.ledger.report import ReportError
from gemgate.storage import Store
from gemgate.storage.postgres.ledger import AWAY as PG_AWAY
from gemgate.storage.postgres.schema import SchemaError as PgSchemaError
from gemgate.storage.sqlite.schema import SchemaError

T = TypeVar("T")


def _settings(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path, require_keys=False)
    except ConfigError as exc:
        click.echo(f"gemgate: invalid configuration\n{exc}", err=True)
        sys.exit(2)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"gemgate: {message}", err=True)
    sys.exit(code)


@dataclass
class _Opened:
    """The configured store, opened for one command, called from synchronous code."""

    store: Store
    loop: asyncio.AbstractEventLoop

    @property
    def keys(self) -> KeyStore:
        return self.store.keys

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)


@contextmanager
def _store(db: Path | None, config_path: Path | None) -> Iterator[_Opened]:
    settings = _settings(config_path)
    if db is not None:
        settings = settings.model_copy(update={"ledger": settings.ledger.model_copy(
            update={"path": str(db)}), "store": settings.store.model_copy(
            update={"backend": "sqlite"})})
    store = Backends(settings).make_store(time.time)
    if store is None:
        _fail("the ledger is switched off (ledger.enabled: false): there is no store", 2)
        return
    loop = asyncio.new_event_loop()
    opened = _Opened(store, loop)
    try:
        opened.run(store.open())
    except (SchemaError, PgSchemaError, OSError, *PG_AWAY) as exc:
        loop.close()
        _fail(f"cannot open the store: {exc}", 2)
    try:
        yield opened
    except (KeyNotFound, KeyConflict, KeyInvalid, ReportError) as exc:
        _fail(str(exc), 2 if isinstance(exc, ReportError) else 1)
    finally:
        opened.run(store.close())
        loop.close()


def _future(text: str) -> str | None:
    """`30d`, `12h`, `2w` from now, a date or date-time (UTC unless zoned), or `never`."""
    text = text.strip()
    if text.lower() in ("never", "none", ""):
        return None
    units = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[:-1].isdigit() and text[-1] in units:
        when = datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * units[text[-1]])
        return when.isoformat()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise click.BadParameter(f"{text!r}: use 30d, 12h, 2w, a date like 2026-12-31, "
                                 "or never") from None


def _metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: use NAME=VALUE")
        found[name] = value
    return found


def _spec_options(func: Callable[..., T]) -> Callable[..., T]:
    """The options that set a key's rights, shared by `create` and `update`."""
    options = [
        click.option("--owner", help="Who the key is for (free text, e.g. an e-mail)."),
        click.option("--model", "models", multiple=True,
                     help="Allowed model pattern, e.g. 'gemini-2.5-flash*' (repeatable; "
                          "none: every model)."),
        click.option("--rpm", type=int, help="The key's own requests per minute."),
        click.option("--tpm", type=int, help="The key's own input tokens per minute."),
        click.option("--daily-budget", type=float, help="USD per day."),
        click.option("--monthly-budget", type=float, help="USD per calendar month."),
        click.option("--priority", type=click.Choice(["high", "normal", "low", "batch"]),
                     help="Default priority of the key's requests."),
        click.option("--ip", "ips", multiple=True,
                     help="Allowed client address or CIDR (repeatable; none: anywhere)."),
        click.option("--expires", help="30d, 12h, 2w, a date such as 2026-12-31, or never."),
        click.option("--meta", "meta", multiple=True, help="NAME=VALUE metadata (repeatable)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _spec_from(options: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    simple = {"owner": "owner", "rpm": "rpm", "tpm": "tpm", "daily_budget": "daily_budget_usd",
              "monthly_budget": "monthly_budget_usd", "priority": "priority"}
    for option, field in simple.items():
        if options.get(option) is not None:
            spec[field] = options[option]
    if options.get("models"):
        spec["models"] = list(options["models"])
    if options.get("ips"):
        spec["ip_allow"] = list(options["ips"])
    if options.get("expires") is not None:
        spec["expires_at"] = _future(options["expires"])
    if options.get("meta"):
        spec["metadata"] = _metadata(options["meta"])
    return spec


def _spending(opened: _Opened, key: VirtualKey, zone: str) -> dict[str, Any]:
    """This period's spend of each budget the key has, from the ledger: what the gateway
    itself counts against the budget (free-tier calls cost 0 unless price_free_tier)."""
    budgets, now = Budgets(zone), time.time()
    found: dict[str, Any] = {}
    for kind in KINDS:
        limit = limit_of(key, kind)
        if limit is not None:
            period = budgets.period(kind, now)
            spent = opened.run(opened.keys.spent(key.id, period.start, period.end))
            found[kind] = {"budget_usd": limit, "spent_usd": round(spent, 9),
                           "remaining_usd": round(max(0.0, limit - spent), 9)}
    return found


def _status(key: VirtualKey, spending: dict[str, Any], now: float) -> str:
    status = key.status(now)
    spent = [kind for kind, s in spending.items() if s["spent_usd"] >= s["budget_usd"]]
    return f"exhausted ({', '.join(spent)})" if status == "active" and spent else status


def _print_key(key: VirtualKey, as_json: bool, secret: str | None = None,
               spending: dict[str, Any] | None = None) -> None:
    view = key.view()
    if spending is not None:
        view["status"] = _status(key, spending, time.time())
        view["spending"] = spending
    if as_json:
        if secret:
            view["secret"] = secret
        click.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
        return
    if secret:
        click.echo(f"Virtual key {view['id']} ({view['name']}):\n\n    {secret}\n\n"
                   "Copy it now: it is shown this once; gemgate keeps only its hash.\n")
    for field in ("id", "name", "owner", "status", "key", "models", "rpm", "tpm",
                  "daily_budget_usd", "monthly_budget_usd", "priority", "ip_allow",
                  "expires_at", "metadata", "created_at", "revoked_at"):
        value = view.get(field)
        if value in (None, [], {}):
            continue
        click.echo(f"  {field:<19}{', '.join(value) if isinstance(value, list) else value}")
    for kind, spent in (spending or {}).items():
        click.echo(f"  {kind + ' spend':<19}{spent['spent_usd']:g} of {spent['budget_usd']:g} "
                   f"USD ({spent['remaining_usd']:g} left)")


db_option = click.option("--db", type=click.Path(dir_okay=False, path_type=Path),
                         help="The gateway's database file [ledger.path, or ./gemgate.db].")
config_option = click.option("--config", "config_path",
                             type=click.Path(exists=True, dir_okay=False, path_type=Path),
                             help="gemgate.yaml, to find the store (ledger.path, or store:).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def vkeys() -> None:
    """Create, list, update, rotate and revoke virtual keys (gk-…)."""


@vkeys.command()
@click.argument("name")
@_spec_options
@click.option("--disabled", is_flag=True, help="Create it switched off.")
@db_option
@config_option
@json_option
def create(name: str, disabled: bool, db: Path | None, config_path: Path | None,
           as_json: bool, **options: Any) -> None:
    """Create a key for NAME and print its secret (once)."""
    spec = {"name": name, **_spec_from(options), "enabled": not disabled}
    with _store(db, config_path) as opened:
        key, secret = opened.run(opened.keys.create(spec))
    _print_key(key, as_json, secret)


@vkeys.command(name="list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@db_option
@config_option
@json_option
def list_keys(include_revoked: bool, db: Path | None, config_path: Path | None,
              as_json: bool) -> None:
    """List keys (secrets never shown: only their masks)."""
    zone = _settings(config_path).timezone
    with _store(db, config_path) as opened:
        keys = opened.run(opened.keys.all(include_revoked))
        spending = {k.id: _spending(opened, k, zone) for k in keys}
    now = time.time()
    if as_json:
        views = [{**k.view(), "status": _status(k, spending[k.id], now),
                  "spending": spending[k.id]} for k in keys]
        click.echo(orjson.dumps(views, option=orjson.OPT_INDENT_2).decode())
        return
    rows = [("ID", "NAME", "OWNER", "STATUS", "KEY", "MODELS", "DAY $ SPENT/BUDGET",
             "MONTH $ SPENT/BUDGET", "EXPIRES")]
    for key in keys:
        spec, spent = key.spec, spending[key.id]
        rows.append((key.id, key.name, spec.owner or "-", _status(key, spent, now), key.mask,
                     ",".join(spec.models) or "*", _money(spent.get("daily")),
                     _money(spent.get("monthly")),
                     spec.expires_at.date().isoformat() if spec.expires_at else "-"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _money(spent: dict[str, float] | None) -> str:
    return "-" if spent is None else f"{spent['spent_usd']:g}/{spent['budget_usd']:g}"


@vkeys.command()
@click.argument("ref")
@db_option
@config_option
@json_option
def show(ref: str, db: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Show one key, by id or name."""
    zone = _settings(config_path).timezone
    with _store(db, config_path) as opened:
        key = opened.run(opened.keys.get(ref))
        spending = _spending(opened, key, zone)
    _print_key(key, as_json, spending=spending)


@vkeys.command()
@click.argument("ref")
@_spec_options
@click.option("--name", help="A new name.")
@click.option("--enable/--disable", "enabled", default=None, help="Switch the key on or off.")
@click.option("--any-model", is_flag=True, help="Remove the model restriction.")
@click.option("--anywhere", is_flag=True, help="Remove the IP restriction.")
@db_option
@config_option
@json_option
def update(ref: str, name: str | None, enabled: bool | None, any_model: bool, anywhere: bool,
           db: Path | None, config_path: Path | None, as_json: bool, **options: Any) -> None:
    """Change a key's rights; options not given stay as they are."""
    patch = _spec_from(options)
    if name:
        patch["name"] = name
    if enabled is not None:
        patch["enabled"] = enabled
    if any_model:
        patch["models"] = []
    if anywhere:
        patch["ip_allow"] = []
    with _store(db, config_path) as opened:
        key = opened.run(opened.keys.update(ref, patch))
    _print_key(key, as_json)


@vkeys.command()
@click.argument("ref")
@db_option
@config_option
@json_option
def rotate(ref: str, db: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Give a key a new secret; the old one stops working."""
    with _store(db, config_path) as opened:
        key, secret = opened.run(opened.keys.rotate(ref))
    _print_key(key, as_json, secret)


@vkeys.command()
@click.argument("ref")
@db_option
@config_option
@json_option
def revoke(ref: str, db: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Revoke a key for good (its usage history stays)."""
    with _store(db, config_path) as opened:
        key = opened.run(opened.keys.revoke(ref))
    _print_key(key, as_json)


@click.command()
@click.option("--by", type=click.Choice(list(reports.GROUPS)), default="tenant",
              show_default=True, help="Group rows by this.")
@click.option("--since", default="7d", show_default=True,
              help="Start: 7d, 12h, 30m ago, or a date such as 2026-11-01.")
@click.option("--until", default=None, help="End (default: now), same forms as --since.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--key", "key_id", help="Only this virtual key (id).")
@click.option("--model", help="Only this model.")
@click.option("--project", help="Only this Google Cloud project.")
@click.option("--tz", "timezone", default=None,
              help="Time zone of days for --by day [the configuration's timezone].")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@db_option
@config_option
@json_option
def usage(by: str, since: str, until: str | None, tenant: str | None, key_id: str | None,
          model: str | None, project: str | None, timezone: str | None, as_csv: bool,
          db: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Requests, tokens and cost from the ledger, grouped."""
    zone = timezone or _settings(config_path).timezone
    try:
        start = reports.parse_when(since)
        end = reports.parse_when(until) if until else None
    except reports.ReportError as exc:
        _fail(str(exc), 2)
        return
    with _store(db, config_path) as opened:
        report = opened.run(opened.store.ledger.report(
            by, start, end, zone, tenant=tenant, key=key_id, model=model, project=project))
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    elif as_csv:
        click.echo(reports.to_csv(report), nl=False)
    else:
        click.echo(reports.to_table(report))
