"""Everything in a SQLite store, table by table, for `gemgate store migrate` (the reading side;
the PostgreSQL side is storage/postgres/importer.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gemgate.ledger.record import COLUMNS
from gemgate.storage.sqlite.schema import read_only

# The tables a store holds, each with the columns both backends share, in order.
TABLES: dict[str, tuple[str, ...]] = {
    "vkeys": ("id", "name", "digest", "mask", "spec", "created_at", "updated_at",
              "revoked_at"),
    "resources": ("name", "tenant", "project", "created_at"),
    "usage_rollup": ("bucket", "tenant", "vkey_id", "provider", "project", "model", "requests",
                     "errors", "prompt_tokens", "candidates_tokens", "thoughts_tokens",
                     "cached_tokens", "total_tokens", "cost_usd", "cache_hits", "saved_usd"),
    "requests": COLUMNS,
}
_BOOLEANS = {"stream", "cancelled"}


def rows(path: str | Path, table: str, batch: int = 10_000) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows in batches (booleans as booleans, not SQLite's 0/1)."""
    columns = TABLES[table]
    flags = [i for i, c in enumerate(columns) if c in _BOOLEANS]
    with read_only(path) as db:
        cursor = db.execute(f"SELECT {', '.join(columns)} FROM {table}")
        while True:
            found = cursor.fetchmany(batch)
            if not found:
                return
            if flags:
                found = [tuple(bool(v) if i in flags else v for i, v in enumerate(row))
                         for row in found]
            yield found


def totals(path: str | Path) -> dict[str, Any]:
    """Row counts and sums that a faithful copy must reproduce."""
    with read_only(path) as db:
        found: dict[str, Any] = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                                 for t in TABLES}
        found["requests_cost_usd"], found["requests_tokens"] = db.execute(
            "SELECT coalesce(sum(cost_usd), 0), coalesce(sum(total_tokens), 0) "
            "FROM requests").fetchone()
        found["rollup_cost_usd"], found["rollup_requests"] = db.execute(
            "SELECT coalesce(sum(cost_usd), 0), coalesce(sum(requests), 0) "
            "FROM usage_rollup").fetchone()
    return found


def ts_span(path: str | Path) -> tuple[float, float] | None:
    """The first and last request's `ts` (None for an empty ledger)."""
    with read_only(path) as db:
        first, last = db.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    return None if first is None else (float(first), float(last))
