"""Small shared records with a lifetime: a resumable upload's session today (a chunk may land
on any replica), whatever else must be found again by id. One call per read or write, so a
network backend (Redis) serves the same interface."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol


class Records(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def put_new(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Puts only when `key` holds nothing (atomically, across replicas): True if it did."""

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl_s: float) -> int:
        """Adds one to a count (atomically, across replicas; a new count lives `ttl_s`) and
        returns the count now."""


class MemoryRecords:
    """One process's records: bounded (the oldest go first) and expiring."""

    def __init__(self, capacity: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self.clock = capacity, clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        found = self._items.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self.clock():
            del self._items[key]
            return None
        return value

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        self._items[key] = (self.clock() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    async def put_new(self, key: str, value: bytes, ttl_s: float) -> bool:
        if await self.get(key) is not None:
            return False
        await self.put(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def incr(self, key: str, ttl_s: float) -> int:
        found = self._items.get(key)
        if found is None or found[0] <= self.clock():
            await self.put(key, b"1", ttl_s)
            return 1
        count = int(found[1]) + 1
        self._items[key] = (found[0], str(count).encode())
        return count
