"""Virtual keys as the running gateway sees them: changes through the admin API, the key book
and the budget counters kept in step with the database.

The book is reloaded whenever `keys_version` moves: at once after an admin API change, and
within `key_refresh_s` after a change made elsewhere (the `gemgate vkeys` CLI on the same file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from gemgate.access.book import KeyBook
from gemgate.access.budgets import Budgets, Period
from gemgate.access.rates import KeyRates
from gemgate.access.store import KeyStore
from gemgate.access.vkeys import VirtualKey
from gemgate.ledger.writer import Ledger

log = logging.getLogger("gemgate.keys")
T = TypeVar("T")


def spent_in(db: sqlite3.Connection, key_id: str, period: Period) -> float:
    row = db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM usage_rollup "
                     "WHERE vkey_id = ? AND bucket >= ? AND bucket < ?",
                     (key_id, period.start, period.end)).fetchone()
    return float(row[0])


class KeyService:
    def __init__(self, ledger: Ledger, book: KeyBook, budgets: Budgets, rates: KeyRates,
                 refresh_s: float) -> None:
        self.ledger, self.book, self.budgets, self.rates = ledger, book, budgets, rates
        self.refresh_s = refresh_s
        self._poller: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Reloads the book when the database's keys changed, and starts the budget counters
        of keys that have none yet from what the ledger says they spent."""
        book = self.book

        def read(db: sqlite3.Connection) -> tuple[int, list[VirtualKey] | None]:
            store = KeyStore(db)
            version = store.version()
            return version, (store.all() if version != book.version else None)

        version, keys = await self.ledger.run(read)
        if keys is None:
            return
        self.book.load(keys, version)
        self.rates.forget({k.id for k in keys})
        starts = [(key, period) for key in keys if key.revoked_at is None
                  for period in self.budgets.needs_start(key)]
        if starts:
            spent = await self.ledger.run(
                lambda db: [spent_in(db, key.id, period) for key, period in starts])
            for (key, period), usd in zip(starts, spent, strict=True):
                self.budgets.start(key, period, usd)

    def start(self) -> None:
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except sqlite3.Error as exc:
                log.error("could not read virtual keys: %s", exc)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def change(self, work: Callable[[KeyStore], T]) -> T:
        """Runs a change on the writer's thread, then reloads, so it holds from the next
        request on."""
        result = await self.ledger.run(lambda db: work(KeyStore(db)))
        await self.refresh()
        return result

    async def read(self, work: Callable[[KeyStore], T]) -> T:
        return await self.ledger.run(lambda db: work(KeyStore(db)))

    def spent(self, key: VirtualKey) -> dict[str, Any]:
        return {"daily": round(self.budgets.spent(key.id, "daily"), 9),
                "monthly": round(self.budgets.spent(key.id, "monthly"), 9)}
