"""Slots shared through Redis: a sorted set per scope, each holder scored by its lease's end
(ms, Redis's clock), so expired leases are dropped by the same script that counts. While Redis
is away, this replica counts in its own memory (its sessions are still bounded, by its share)."""

from __future__ import annotations

import contextlib

from gemgate.state.redis.link import Down, Link
from gemgate.state.slots import LEASE_S, MemorySlots

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""
# KEYS: the scope's set. ARGV: holder, limit, lease ms. Returns 1 when taken (or already held).
_TAKE = _NOW + """
local lease = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return 1
"""
# KEYS: the scope's set. ARGV: holder, lease ms. Extends a held slot only.
_RENEW = _NOW + """
local lease = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
end
return 1
"""
_COUNT = _NOW + "return redis.call('ZCARD', KEYS[1])"


class RedisSlots:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.local = MemorySlots()
        client = link.client
        self._take, self._renew = client.register_script(_TAKE), client.register_script(_RENEW)
        self._count = client.register_script(_COUNT)
        self._lease_ms = int(LEASE_S * 1000)

    def _key(self, scope: str) -> str:
        return self.link.key("slots", scope)

    async def take(self, scope: str, holder: str, limit: int) -> bool:
        try:
            taken = await self.link.call(self._take(keys=[self._key(scope)],
                                                    args=[holder, limit, self._lease_ms]))
        except Down:
            return await self.local.take(scope, holder, limit)
        return bool(taken)

    async def renew(self, scope: str, holder: str) -> None:
        await self.local.renew(scope, holder)
        with contextlib.suppress(Down):
            await self.link.call(self._renew(keys=[self._key(scope)],
                                             args=[holder, self._lease_ms]))

    async def give(self, scope: str, holder: str) -> None:
        await self.local.give(scope, holder)
        with contextlib.suppress(Down):
            await self.link.call(self.link.client.zrem(self._key(scope), holder))

    async def count(self, scope: str) -> int:
        try:
            return int(await self.link.call(self._count(keys=[self._key(scope)], args=[])))
        except Down:
            return await self.local.count(scope)
