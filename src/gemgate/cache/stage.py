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
from gemgate.cache.semantic import Embedder, VectorIndex, context_key, last_user_text
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
    def __init__(self, config: CacheConfig, store: CacheStore, prices: PriceBook,
                 embedder: Embedder | None = None, index: VectorIndex | None = None) -> None:
        self.config, self.store, self.prices = config, store, prices
        self.embedder, self.index = embedder, index  # the semantic cache, when configured
        self._flights: dict[CacheKey, asyncio.Future[Entry | None]] = {}
        self.hits = self.semantic_hits = self.misses = 0

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
            similar = await self._similar(call, plan)
            if similar is not None:
                self.semantic_hits += 1
                call.cache_similarity = similar[1]
                return self.answer(call, similar[0], "SEMANTIC-HIT")
        if entry is None:
            self.misses += 1
            call.cache = "MISS"
            self._flights.setdefault(plan.key, asyncio.get_running_loop().create_future())
            return None
        self.hits += 1
        return self.answer(call, entry, "HIT")

    async def _similar(self, call: Call, plan: policy.Plan) -> tuple[Entry, float] | None:
        """An entry whose request meant the same, for a tenant that allows it."""
        tenant = call.tenant
        if self.embedder is None or self.index is None or tenant is None or \
                not (tenant.semantic_cache and self.config.semantic.enabled):
            return None
        found = last_user_text(call.parsed, self.config.semantic.with_tools)
        if found is None:
            return None
        text, rest = found
        vector = await self.embedder.embed(text)
        if vector is None:
            return None
        context = context_key(call, rest)
        call.cache_vector = (context, vector)
        nearest = await self.index.nearest(plan.key.scope, context, vector)
        threshold = tenant.semantic_threshold or self.config.semantic.threshold
        if nearest is None or nearest[1] < threshold:
            return None
        entry = await self._fresh(policy.Plan(CacheKey(plan.key.scope, plan.key.model,
                                                       nearest[0]), True, False, 0.0,
                                              plan.max_age_s))
        return (entry, nearest[1]) if entry is not None else None

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
            except (ValueError, TypeError, AttributeError):  # not an answer we understand
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
            except (ValueError, TypeError, AttributeError):  # not a stream we understand
                entry = None
        await self._land(call, entry)

    async def _land(self, call: Call, entry: Entry | None) -> None:
        plan = call.cache_plan
        if plan is None:
            return
        flight = self._flights.pop(plan.key, None)
        if entry is not None and plan.store:
            await self.store.put(plan.key, entry, plan.ttl_s)
            if call.cache_vector is not None and self.index is not None:
                context, vector = call.cache_vector
                await self.index.add(plan.key.scope, context, plan.key.digest, vector,
                                     plan.ttl_s)
        if flight is not None and not flight.done():
            flight.set_result(entry)

    def _cost(self, call: Call, usage: dict[str, Any] | None) -> float:
        return self.prices.cost(call.model, Tokens.of(usage))

    def stats(self) -> dict[str, Any]:
        served = self.hits + self.semantic_hits
        looked = served + self.misses
        return {"hits": self.hits, "semantic_hits": self.semantic_hits, "misses": self.misses,
                "hit_rate": round(served / looked, 4) if looked else None,
                "store": self.store.stats()}
