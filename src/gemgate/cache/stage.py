"""The cache stage: between the owners stage and the relay, a call is answered from the cache
(HIT), or goes upstream and its answer is kept (MISS, REFRESH); every cacheable call says which
in `x-gemgate-cache`.

Single flight: while one call for a key is upstream, identical calls wait for its answer
(bounded by their own deadline) instead of going upstream too, and are answered from it; if it
does not end in a storable answer, each goes upstream itself.

Only complete successes are kept (finish reason STOP or MAX_TOKENS, no error event, not
cancelled, not cut), never bigger than `cache.max_entry_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from gemgate.cache import policy
from gemgate.cache.entry import Entry, complete, entry_from, events_of
from gemgate.cache.store import CacheKey, CacheStore
from gemgate.config import CacheConfig
from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.prices import PriceBook, Tokens


class Replay:
    """A cached stream, served event by event (a ChunkStream)."""

    __slots__ = ("_frames",)

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    async def read(self) -> bytes:
        return self._frames.pop(0) if self._frames else b""

    def release(self) -> None:
        return None

    def close(self) -> None:
        return None


class ResponseCache:
    def __init__(self, config: CacheConfig, store: CacheStore, prices: PriceBook) -> None:
        self.config, self.store, self.prices = config, store, prices
        self._flights: dict[CacheKey, asyncio.Future[Entry | None]] = {}
        self.hits = self.misses = 0

    async def lookup(self, call: Call) -> Answer | None:
        """A cached answer for the call, or None (and the call is marked for keeping)."""
        plan = policy.plan(call, self.config)
        if plan is None:
            if call.action in policy.ACTIONS:
                call.cache = "BYPASS"
            return None
        call.cache_plan = plan
        if not plan.lookup:
            call.cache = "REFRESH"
            return None
        entry = await self._fresh(plan)
        if entry is None:
            entry = await self._follow(call, plan.key)
        if entry is None:
            self.misses += 1
            call.cache = "MISS"
            self._flights.setdefault(plan.key, asyncio.get_running_loop().create_future())
            return None
        self.hits += 1
        return self.answer(call, entry, "HIT")

    async def _fresh(self, plan: policy.Plan) -> Entry | None:
        entry = await self.store.get(plan.key)
        if entry is None:
            return None
        if plan.max_age_s is not None and time.time() - entry.created > plan.max_age_s:
            return None
        return entry

    async def _follow(self, call: Call, key: CacheKey) -> Entry | None:
        """Waits for an identical call already upstream (its answer, or None)."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(flight), max(0.0, call.remaining()))
        return None

    def answer(self, call: Call, entry: Entry, label: str) -> Answer:
        call.cache = label
        call.cache_age_s = max(0.0, time.time() - entry.created)
        call.cache_saved_usd = entry.cost_usd
        headers = [("Content-Type", "text/event-stream" if call.sse else "application/json")]
        if not call.stream:
            return Answer(200, headers, entry.whole(), usage=entry.usage)
        frames = entry.frames(call.sse)
        return Answer(200, headers, stream=Replay(frames[1:]), first_chunk=frames[0],
                      usage=entry.usage)

    # ---- keeping answers --------------------------------------------------------------------

    async def keep_whole(self, call: Call, answer: Answer) -> None:
        entry = None
        if answer.status == 200 and answer.body and len(answer.body) <= \
                self.config.max_entry_bytes:
            try:
                if complete([orjson.loads(answer.body)]):
                    entry = entry_from(call.model, answer.body, [], answer.usage,
                                       self._cost(call, answer.usage))
            except orjson.JSONDecodeError:
                entry = None
        await self._land(call, entry)

    async def keep_stream(self, call: Call, raw: bytes | None,
                          usage: dict[str, Any] | None) -> None:
        """A stream that ended: `raw` is all of it (None when it was cut, abandoned, failed
        or too big)."""
        entry = None
        if raw:
            try:
                events = events_of(raw, call.sse)
                if complete([orjson.loads(e) for e in events]):
                    entry = entry_from(call.model, None, events, usage, self._cost(call, usage))
            except (orjson.JSONDecodeError, ValueError):
                entry = None
        await self._land(call, entry)

    async def _land(self, call: Call, entry: Entry | None) -> None:
        plan = call.cache_plan
        if plan is None:
            return
        flight = self._flights.pop(plan.key, None)
        if entry is not None and plan.store:
            await self.store.put(plan.key, entry, plan.ttl_s)
        if flight is not None and not flight.done():
            flight.set_result(entry)

    def _cost(self, call: Call, usage: dict[str, Any] | None) -> float:
        return self.prices.cost(call.model, Tokens.of(usage))

    def stats(self) -> dict[str, Any]:
        looked = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / looked, 4) if looked else None,
                "store": self.store.stats()}
