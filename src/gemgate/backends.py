"""Which state and storage backends a configuration asks for, built in one place.

    state: memory (default) | redis     quota windows, health, key counters, records
    store: sqlite (default) | postgres  ledger, rollups, virtual keys, resource owners

The embedded default (memory + SQLite) needs nothing else and serves one process. Replicas and
`serve --workers N` need both shared backends: each worker's counts must be everyone's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gemgate.access.budgets import Budgets
from gemgate.access.counters import KeyCounters, MemoryCounters
from gemgate.access.rates import KeyRates
from gemgate.cache.semantic import MemoryIndex, RedisIndex, VectorIndex
from gemgate.cache.store import CacheStore, MemoryCache, RedisCache
from gemgate.config import Settings
from gemgate.state import RateState
from gemgate.state.health import HealthState, LocalHealth
from gemgate.state.memory import MemoryRateState
from gemgate.state.records import MemoryRecords, Records
from gemgate.state.redis.counters import RedisCounters
from gemgate.state.redis.health import RedisHealth
from gemgate.state.redis.link import Link
from gemgate.state.redis.rates import RedisRateState
from gemgate.state.redis.records import RedisRecords
from gemgate.state.redis.slots import RedisSlots
from gemgate.state.slots import MemorySlots, Slots
from gemgate.storage import Store
from gemgate.storage.postgres.store import PgStore
from gemgate.storage.sqlite.store import SqliteStore


def shared_ready(settings: Settings) -> str | None:
    """Why this configuration cannot run several workers (None when it can)."""
    missing = []
    if settings.state.backend != "redis":
        missing.append("state: {backend: redis, url: redis://…}")
    if settings.ledger.enabled and settings.store.backend != "postgres":
        missing.append("store: {backend: postgres, dsn: postgresql://…}")
    if not missing:
        return None
    return ("several workers must share their quota windows, key health, budgets and ledger; "
            "configure " + " and ".join(missing) + " (the embedded memory state and SQLite "
            "file serve one process)")


class Backends:
    def __init__(self, settings: Settings, health: HealthState | None = None) -> None:
        self.settings = settings
        self.link = Link(settings.state) if settings.state.backend == "redis" else None
        self.health: HealthState = health or (
            RedisHealth(self.link) if self.link is not None else LocalHealth())
        self.records: Records = self.records_for("uploads")
        self.store: Store | None = None

    def records_for(self, space: str) -> Records:
        """Small records with a lifetime (upload sessions, console sessions), shared when the
        state is."""
        return RedisRecords(self.link, space) if self.link is not None else MemoryRecords()

    def slots(self, clock: Callable[[], float]) -> Slots:
        """Things open at once against a limit (Live sessions), shared when the state is."""
        return RedisSlots(self.link) if self.link is not None else MemorySlots(clock)

    def make_store(self, clock: Callable[[], float]) -> Store | None:
        """The storage backend (None with the ledger switched off)."""
        if not self.settings.ledger.enabled:
            return None
        if self.settings.store.backend == "postgres":
            self.store = PgStore(self.settings.store, self.settings.ledger, clock)
        else:
            self.store = SqliteStore(self.settings.ledger, clock)
        return self.store

    def rate_state(self, minute_s: float, margin_s: float, day_s: float | None,
                   clock: Callable[[], float]) -> RateState | RedisRateState:
        if self.link is not None:
            return RedisRateState(self.link, minute_s, margin_s, day_s, clock)
        return MemoryRateState(minute_s, margin_s, day_s, clock)

    def cache_store(self, clock: Callable[[], float]) -> CacheStore:
        """The response cache's entries: shared through Redis when the state is."""
        if self.link is not None:
            return RedisCache(self.link, self.settings.cache.max_bytes)
        return MemoryCache(self.settings.cache.max_bytes, clock)

    def vector_index(self) -> VectorIndex:
        """The semantic cache's vectors: shared through Redis when the state is."""
        limit = self.settings.cache.semantic.max_entries
        return RedisIndex(self.link, limit) if self.link is not None else MemoryIndex(limit)

    def counters(self, rates: KeyRates, budgets: Budgets) -> KeyCounters:
        if self.link is not None:
            return RedisCounters(self.link, rates, budgets)
        return MemoryCounters(rates, budgets)

    def view(self) -> list[dict[str, Any]]:
        """The shared parts and whether each answers (for /readyz and /admin/pool)."""
        shown = []
        if self.link is not None:
            shown.append({"part": "state", **self.link.view()})
        view = getattr(self.store, "view", None)
        if view is not None:
            shown.append({"part": "store", **view()})
        return shown

    async def start(self) -> None:
        if self.link is not None:
            await self.link.check()

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
