"""`gemgate store migrate --to postgresql://…`: move a SQLite store (ledger, rollup, virtual
keys, resource owners) into PostgreSQL, and show that the copy is exact."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gemgate.config import ConfigError, load_settings
from gemgate.secrets import mask_url


@click.group()
def store() -> None:
    """The gateway's store (ledger, virtual keys): move it between backends."""


@store.command()
@click.option("--to", "dsn", required=True, help="postgresql://user@host:5432/database")
@click.option("--schema", default="public", show_default=True,
              help="The PostgreSQL schema to fill (it must hold no ledger yet).")
@click.option("--db", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The SQLite file [ledger.path from the configuration, or ./gemgate.db].")
@click.option("--config", "config_path",
              type=click.Path(exists=True, dir_okay=False, path_type=Path))
def migrate(dsn: str, schema: str, db: Path | None, config_path: Path | None) -> None:
    """Copy the SQLite store into PostgreSQL; then set `store: {backend: postgres, dsn: …}`."""
    from gemgate.storage.postgres.importer import TargetNotEmpty, copy_into
    from gemgate.storage.sqlite.export import totals

    if db is None:
        try:
            db = Path(load_settings(config_path, require_keys=False).ledger.path)
        except ConfigError as exc:
            click.echo(f"gemgate: invalid configuration\n{exc}", err=True)
            sys.exit(2)
    if not db.exists():
        click.echo(f"gemgate: no SQLite store at {db}", err=True)
        sys.exit(2)
    source = totals(db)
    try:
        target = asyncio.run(copy_into(db, dsn, schema))
    except TargetNotEmpty as exc:
        click.echo(f"gemgate: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"gemgate: cannot reach {mask_url(dsn)}: {exc}", err=True)
        sys.exit(2)
    click.echo(f"copied {db} into {mask_url(dsn)} (schema {schema}):")
    exact = True
    for name, value in source.items():
        same = abs(float(value) - float(target[name])) < 1e-6
        exact &= same
        click.echo(f"  {name:<20} {value!s:>16}  ->  {target[name]!s:<16} "
                   f"{'ok' if same else 'DIFFERENT'}")
    if not exact:
        sys.exit(1)
    click.echo("exact. Now configure:  store: {backend: postgres, dsn: " + mask_url(dsn)
               + (f", schema: {schema}" if schema != "public" else "") + "}")
