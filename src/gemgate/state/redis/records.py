"""Small records with a lifetime in Redis (a resumable upload's session: its chunks may land on
any replica). While Redis is away, this replica's memory holds them (a session started during
the outage finishes on the replica that started it)."""

from __future__ import annotations

import contextlib

from gemgate.state.records import MemoryRecords
from gemgate.state.redis.link import Down, Link, as_bytes


class RedisRecords:
    def __init__(self, link: Link, space: str = "records") -> None:
        self.link, self.space = link, space
        self.local = MemoryRecords()

    async def get(self, key: str) -> bytes | None:
        try:
            found = await self.link.call(self.link.client.get(self.link.key(self.space, key)))
        except Down:
            return await self.local.get(key)
        return as_bytes(found) if found is not None else await self.local.get(key)

    async def put(self, key: str, value: bytes, ttl_s: float) -> None:
        try:
            await self.link.call(self.link.client.set(self.link.key(self.space, key), value,
                                                      px=max(1, int(ttl_s * 1000))))
        except Down:
            await self.local.put(key, value, ttl_s)

    async def put_new(self, key: str, value: bytes, ttl_s: float) -> bool:
        try:
            done = await self.link.call(self.link.client.set(
                self.link.key(self.space, key), value, px=max(1, int(ttl_s * 1000)), nx=True))
        except Down:
            return await self.local.put_new(key, value, ttl_s)
        return bool(done)

    async def incr(self, key: str, ttl_s: float) -> int:
        name = self.link.key(self.space, key)
        try:
            count = int(await self.link.call(self.link.client.incr(name)))
            if count == 1:
                await self.link.call(self.link.client.pexpire(name, max(1, int(ttl_s * 1000))))
        except Down:
            return await self.local.incr(key, ttl_s)
        return count

    async def delete(self, key: str) -> None:
        await self.local.delete(key)
        with contextlib.suppress(Down):
            await self.link.call(self.link.client.delete(self.link.key(self.space, key)))
