"""Where gemgate keeps what must outlive a process: the ledger (records, reports), virtual keys
and resource owners — behind these interfaces, each async and one call per decision, so a
network backend (PostgreSQL) can stand behind them as the embedded SQLite one does
(storage/sqlite/). Nothing outside a backend speaks SQL."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from gemgate.access.vkeys import VirtualKey
from gemgate.ledger.record import Record
from gemgate.storage.sqlite.reports import Report
from gemgate.upstream.affinity import OwnerStore


class KeyStore(Protocol):
    """Virtual keys. Raises KeyNotFound, KeyConflict or KeyInvalid (storage.sqlite.keys)."""

    async def version(self) -> int:
        """A number that moves whenever any key changes (replicas reload on it)."""

    async def all(self, include_revoked: bool = True) -> list[VirtualKey]: ...

    async def get(self, ref: str) -> VirtualKey: ...

    async def create(self, data: dict[str, Any]) -> tuple[VirtualKey, str]: ...

    async def update(self, ref: str, patch: dict[str, Any]) -> VirtualKey: ...

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]: ...

    async def revoke(self, ref: str) -> VirtualKey: ...

    async def spent(self, key_id: str, start: float, end: float) -> float:
        """USD a key spent in [start, end) — where budget counters start from."""


class LedgerStore(Protocol):
    def add(self, record: Record, wait: bool = True) -> asyncio.Future[None] | None:
        """Queues a record for the next group commit; the future resolves once durable."""

    async def report(self, by: str, since: float, until: float | None, timezone: str,
                     **filters: str | None) -> Report: ...


class Store(Protocol):
    @property
    def ledger(self) -> LedgerStore: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def owners(self) -> OwnerStore: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...
