"""The PostgreSQL backend as the gateway uses it: one connection pool, migrated on open, the
ledger (with its local spool), virtual keys and resource owners."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from gemgate.audit import AuditEntry
from gemgate.config import LedgerConfig, StoreConfig
from gemgate.ledger.guard_report import guarded_sql
from gemgate.ledger.report import Report
from gemgate.ledger.search import RequestQuery, rows_of
from gemgate.secrets import mask_url
from gemgate.storage import report_sql
from gemgate.storage.postgres.keys import PgKeys, PgOwners
from gemgate.storage.postgres.ledger import AWAY, PgLedger
from gemgate.storage.postgres.schema import migrate
from gemgate.storage.sqlite.spool import Spool
from gemgate.upstream.keyring import KeyRow


def numbered(sql: str) -> str:
    """`?` placeholders (report_sql's) as PostgreSQL's `$1, $2, …`."""
    count = iter(range(1, 10_000))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


class PgReportingLedger(PgLedger):
    async def report(self, by: str, since: float, until: float | None, timezone: str,
                     **filters: str | None) -> Report:
        plan = report_sql.plan(report_sql.postgres(self.schema), by, since, until, **filters)
        pool = self._pool()
        results = [[tuple(row) for row in await pool.fetch(numbered(sql), *args)]
                   for sql, args in plan.queries]
        names = None
        if plan.names_query:
            names = {row["id"]: row["name"] for row in await pool.fetch(plan.names_query)}
        return report_sql.assemble(plan, results, timezone, names)

    async def claim_once(self, name: str) -> bool:
        claimed = await self._pool().fetchval(
            f"INSERT INTO {self.schema}.metered VALUES ($1, $2) ON CONFLICT DO NOTHING "
            "RETURNING true", name, time.time())
        return bool(claimed)

    async def guarded(self, since: float) -> list[tuple[str, str]]:
        found = await self._pool().fetch(numbered(guarded_sql(f"{self.schema}.")), since)
        return [(row[0], row[1]) for row in found]

    async def search(self, query: RequestQuery) -> list[dict[str, Any]]:
        sql, args = query.sql(f"{self.schema}.")
        return rows_of([tuple(row) for row in await self._pool().fetch(numbered(sql), *args)])


class PgKeyring:
    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str) -> None:
        self._pool, self.s = pool, schema

    async def rows(self) -> list[KeyRow]:
        found = await self._pool().fetch(
            f"SELECT key_id, project, tier, tag, secret, held, removed, changed_at "
            f"FROM {self.s}.upstream_keys ORDER BY changed_at")
        return [KeyRow(*row) for row in found]

    async def save(self, row: KeyRow) -> None:
        await self._pool().execute(
            f"INSERT INTO {self.s}.upstream_keys VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (key_id) DO UPDATE SET project = $2, tier = $3, tag = $4, "
            "secret = $5, held = $6, removed = $7, changed_at = $8",
            row.key_id, row.project, row.tier, row.tag, row.secret, row.held, row.removed,
            row.changed_at)


class PgAudit:
    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str) -> None:
        self._pool, self.s = pool, schema

    async def write(self, entry: AuditEntry) -> None:
        await self._pool().execute(
            f"INSERT INTO {self.s}.audit_log (ts, actor, action, target, detail) "
            "VALUES ($1, $2, $3, $4, $5)",
            entry.ts, entry.actor, entry.action, entry.target, entry.detail)

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        found = await self._pool().fetch(
            f"SELECT ts, actor, action, target, detail FROM {self.s}.audit_log "
            "ORDER BY id DESC LIMIT $1", limit)
        return [AuditEntry(*row) for row in found]


class PgStore:
    def __init__(self, plan: StoreConfig, ledger: LedgerConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.plan = plan
        self.schema = plan.schema_name
        self._pool: asyncpg.Pool | None = None
        self.spool = Spool(plan.spool_path)
        self.ledger = PgReportingLedger(self.pool, self.schema, self.spool,
                                        ledger.retention_days, clock)
        self.keys = PgKeys(self.pool, self.schema)
        self.owners = PgOwners(self.pool, self.schema)
        self.keyring = PgKeyring(self.pool, self.schema)
        self.audit = PgAudit(self.pool, self.schema)

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        """Connects and migrates. A PostgreSQL that cannot be reached at start is an error
        (the gateway does not start: there would be no virtual keys to serve)."""
        self._pool = await asyncpg.create_pool(self.plan.dsn, min_size=1,
                                               max_size=self.plan.pool_size, timeout=5,
                                               command_timeout=10)
        async with self._pool.acquire() as connection:
            await migrate(connection, self.schema)
        self.ledger.start()

    async def close(self) -> None:
        await self.ledger.close()
        if self._pool is not None:
            await self._pool.close()
        self.spool.close()

    def view(self) -> dict[str, Any]:
        """For /readyz and /admin/pool."""
        spooled = self.spool.count()
        status = "ok" if self.ledger.up and not spooled else "degraded"
        return {"backend": "postgres", "dsn": mask_url(self.plan.dsn), "status": status,
                "spooled_records": spooled}


__all__ = ["AWAY", "PgStore", "numbered"]
