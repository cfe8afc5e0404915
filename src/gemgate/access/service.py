"""Virtual keys as the running gateway sees them: changes through the admin API, the key book
and the budget counters kept in step with the database.

The book is reloaded whenever `keys_version` moves: at once after an admin API change, and
within `key_refresh_s` after a change made elsewhere (the `gemgate vkeys` CLI on the same file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from gemgate.access.book import KeyBook
from gemgate.access.budgets import Budgets
from gemgate.access.rates import KeyRates
from gemgate.access.store import KeyStore
from gemgate.access.vkeys import VirtualKey

log = logging.getLogger("gemgate.keys")
T = TypeVar("T")


class KeyService:
    def __init__(self, store: KeyStore, book: KeyBook, budgets: Budgets, rates: KeyRates,
                 refresh_s: float) -> None:
        self.store, self.book, self.budgets, self.rates = store, book, budgets, rates
        self.refresh_s = refresh_s
        self._poller: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Reloads the book when the database's keys changed, and starts the budget counters
        of keys that have none yet from what the ledger says they spent."""
        version = await self.store.version()
        if version == self.book.version:
            return
        keys = await self.store.all()
        self.book.load(keys, version)
        self.rates.forget({k.id for k in keys})
        for key in keys:
            if key.revoked_at is None:
                for period in self.budgets.needs_start(key):
                    usd = await self.store.spent(key.id, period.start, period.end)
                    self.budgets.start(key, period, usd)

    def start(self) -> None:
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception as exc:  # the store is away: keep serving on the book we have
                log.error("could not read virtual keys: %s", exc)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def change(self, changed: Awaitable[T]) -> T:
        """A change made in the store, then the book reloaded, so it holds from the next
        request on."""
        result = await changed
        await self.refresh()
        return result

    def spent(self, key: VirtualKey) -> dict[str, Any]:
        return {"daily": round(self.budgets.spent(key.id, "daily"), 9),
                "monthly": round(self.budgets.spent(key.id, "monthly"), 9)}
