"""Where cache entries live: this process's memory (bounded by bytes, least recently used out
first, each entry with its TTL), or Redis when the state is shared (every replica and worker
answers from the same entries; Redis expires them).

A key is `scope|model|digest`: purging a tenant's (or a namespace's) entries, or a model's, is
a match on its parts.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gemgate.cache.entry import Entry
from gemgate.state.redis.link import Down, Link, as_bytes


@dataclass(frozen=True, slots=True)
class CacheKey:
    scope: str  # tenant:<name>, vkey:<id>, ns:<namespace>, or global
    model: str
    digest: str  # of everything in the request that can change the answer

    def __str__(self) -> str:
        return f"{self.scope}|{self.model}|{self.digest}"


class CacheStore(Protocol):
    async def get(self, key: CacheKey) -> Entry | None: ...

    async def put(self, key: CacheKey, entry: Entry, ttl_s: float) -> None: ...

    async def purge(self, scope: str | None = None, model: str | None = None) -> int:
        """Drops the entries of a scope and/or a model (all with neither); how many."""

    def stats(self) -> dict[str, Any]: ...


class MemoryCache:
    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes, self.clock = max_bytes, clock
        self._items: OrderedDict[CacheKey, tuple[float, Entry]] = OrderedDict()
        self.bytes = 0
        self.evicted = 0

    async def get(self, key: CacheKey) -> Entry | None:
        found = self._items.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires <= self.clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)  # recently used: last to go
        return entry

    async def put(self, key: CacheKey, entry: Entry, ttl_s: float) -> None:
        if entry.size > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (self.clock() + ttl_s, entry)
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evicted += 1

    def _drop(self, key: CacheKey) -> None:
        _, entry = self._items.pop(key)
        self.bytes -= entry.size

    async def purge(self, scope: str | None = None, model: str | None = None) -> int:
        doomed = [k for k in self._items if (scope is None or k.scope == scope)
                  and (model is None or k.model == model)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    def stats(self) -> dict[str, Any]:
        return {"backend": "memory", "entries": len(self._items), "bytes": self.bytes,
                "max_bytes": self.max_bytes, "evicted": self.evicted}


def _glob(text: str) -> str:
    """`text` matched literally in a Redis SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCache:
    """Entries shared by every replica; while Redis is away, this replica's memory serves."""

    def __init__(self, link: Link, max_bytes: int) -> None:
        self.link = link
        self.local = MemoryCache(max_bytes)

    def _name(self, key: CacheKey) -> str:
        return self.link.key("c", key.scope, key.model, key.digest)

    async def get(self, key: CacheKey) -> Entry | None:
        try:
            raw = await self.link.call(self.link.client.get(self._name(key)))
        except Down:
            return await self.local.get(key)
        return Entry.load(as_bytes(raw)) if raw is not None else None

    async def put(self, key: CacheKey, entry: Entry, ttl_s: float) -> None:
        try:
            await self.link.call(self.link.client.set(self._name(key), entry.dump(),
                                                      px=max(1, int(ttl_s * 1000))))
        except Down:
            await self.local.put(key, entry, ttl_s)

    async def purge(self, scope: str | None = None, model: str | None = None) -> int:
        pattern = self.link.key("c", _glob(scope) if scope else "*",
                                _glob(model) if model else "*", "*")
        removed = await self.local.purge(scope, model)
        client = self.link.client
        batch: list[Any] = []
        async for name in client.scan_iter(match=pattern, count=1000):
            batch.append(name)
            if len(batch) >= 500:
                removed += await client.delete(*batch)
                batch = []
        if batch:
            removed += await client.delete(*batch)
        return removed

    def stats(self) -> dict[str, Any]:
        return {"backend": "redis", "local_fallback": self.local.stats()}
