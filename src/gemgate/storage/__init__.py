"""Where gemgate keeps what must outlive a process: the ledger (records, reports), virtual keys
and resource owners — behind these interfaces, each async and one call per decision, so a
network backend (PostgreSQL) can stand behind them as the embedded SQLite one does
(storage/sqlite/). Nothing outside a backend speaks SQL."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from gemgate.access.store import KeyStore
from gemgate.audit import AuditStore
from gemgate.ledger.record import Record
from gemgate.ledger.report import Report
from gemgate.ledger.search import RequestQuery
from gemgate.upstream.affinity import OwnerStore
from gemgate.upstream.keyring import KeyringStore

__all__ = ["AuditStore", "KeyStore", "KeyringStore", "LedgerStore", "Store"]


class LedgerStore(Protocol):
    def add(self, record: Record, wait: bool = True) -> asyncio.Future[None] | None:
        """Queues a record for the next group commit; the future resolves once durable."""

    async def report(self, by: str, since: float, until: float | None, timezone: str,
                     **filters: str | None) -> Report: ...

    def backlog(self) -> int:
        """Records not yet committed where they belong (waiting, or spooled)."""

    async def search(self, query: RequestQuery) -> list[dict[str, Any]]:
        """Recent requests, newest first (ledger/search.py): a page and one row more."""

    async def guarded(self, since: float) -> list[tuple[str, str]]:
        """(tenant, guarded) of requests since then in which the guardrails found anything
        (ledger/guard_report.py)."""

    async def claim_once(self, name: str) -> bool:
        """True the first time `name` (a batch job, a results file) is claimed for metering,
        False ever after — atomically, across replicas sharing the store."""


class Store(Protocol):
    @property
    def ledger(self) -> LedgerStore: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def owners(self) -> OwnerStore: ...

    @property
    def keyring(self) -> KeyringStore: ...

    @property
    def audit(self) -> AuditStore: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...
