"""The embedded backend as the gateway uses it: the ledger's one writer, virtual keys and
resource owners written through it, reports read on connections of their own."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from gemgate.access.vkeys import VirtualKey
from gemgate.config import LedgerConfig
from gemgate.ledger.guard_report import guarded_sql
from gemgate.ledger.search import RequestQuery, rows_of
from gemgate.storage.sqlite import reports
from gemgate.storage.sqlite.keys import KeyStore
from gemgate.storage.sqlite.ledger import Ledger
from gemgate.storage.sqlite.operations import SqliteAudit, SqliteKeyring
from gemgate.storage.sqlite.owners import LedgerOwnerStore
from gemgate.storage.sqlite.schema import read_only


class SqliteKeys:
    """The KeyStore interface on the ledger's writer (one writer: no "database is locked")."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def version(self) -> int:
        return await self.ledger.run(lambda db: KeyStore(db).version())

    async def all(self, include_revoked: bool = True) -> list[VirtualKey]:
        return await self.ledger.run(lambda db: KeyStore(db).all(include_revoked))

    async def get(self, ref: str) -> VirtualKey:
        return await self.ledger.run(lambda db: KeyStore(db).get(ref))

    async def create(self, data: dict[str, Any]) -> tuple[VirtualKey, str]:
        return await self.ledger.run(lambda db: KeyStore(db).create(data))

    async def update(self, ref: str, patch: dict[str, Any]) -> VirtualKey:
        return await self.ledger.run(lambda db: KeyStore(db).update(ref, patch))

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]:
        return await self.ledger.run(lambda db: KeyStore(db).rotate(ref))

    async def revoke(self, ref: str) -> VirtualKey:
        return await self.ledger.run(lambda db: KeyStore(db).revoke(ref))

    async def spent(self, key_id: str, start: float, end: float) -> float:
        return await self.ledger.run(lambda db: KeyStore(db).spent(key_id, start, end))


class SqliteStore:
    def __init__(self, plan: LedgerConfig, clock: Callable[[], float]) -> None:
        self.path = plan.path
        self.ledger = SqliteLedger(plan.path, plan.synchronous, plan.retention_days, clock)
        self.keys = SqliteKeys(self.ledger)
        self.owners = LedgerOwnerStore(self.ledger)
        self.keyring = SqliteKeyring(self.ledger)
        self.audit = SqliteAudit(self.ledger)

    async def open(self) -> None:
        await self.ledger.open()

    async def close(self) -> None:
        await self.ledger.close()


class SqliteLedger(Ledger):
    """The group-committing writer, with reports read beside it (WAL lets them)."""

    async def report(self, by: str, since: float, until: float | None, timezone: str,
                     **filters: str | None) -> reports.Report:
        path = self.path

        def run() -> reports.Report:
            with read_only(path) as db:
                return reports.usage_report(db, by, since, until, timezone, **filters)

        return await asyncio.to_thread(run)  # not on the writer's thread: writes go on

    async def claim_once(self, name: str) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            return db.execute("INSERT OR IGNORE INTO metered VALUES (?, ?)",
                              (name, time.time())).rowcount == 1

        return await self.run(claim)

    async def guarded(self, since: float) -> list[tuple[str, str]]:
        path = self.path

        def run() -> list[tuple[str, str]]:
            with read_only(path) as db:
                return [(row[0], row[1]) for row in db.execute(guarded_sql(), (since,))]

        return await asyncio.to_thread(run)

    async def search(self, query: RequestQuery) -> list[dict[str, Any]]:
        path = self.path
        sql, args = query.sql()

        def run() -> list[dict[str, Any]]:
            with read_only(path) as db:
                return rows_of(list(db.execute(sql, args)))

        return await asyncio.to_thread(run)
