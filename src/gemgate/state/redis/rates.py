"""Quota windows and reservations in Redis: every replica admits against the same counts.

`reserve` sends all candidate projects in one script call; the script reserves in the first
with room in every window (RPM, TPM, RPD) or answers how long until the soonest room — by
Redis's clock. A reservation given back (an attempt Google never counted) or settled below its
estimate is announced on a channel, so requests queued on any replica are served at once;
otherwise a queue wakes on its own timer at the moment the script said room appears (no
polling).

While Redis is away, admission runs on this replica's memory windows with every limit divided
by `state.replicas`; when it returns, what was counted locally is added into the shared windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gemgate.state import Limits, Reservation, Scope, ScopeFull
from gemgate.state.memory import MemoryRateState
from gemgate.state.redis.link import Down, Link
from gemgate.state.redis.scripts import ADJUST, MERGE, RESERVE

log = logging.getLogger("gemgate.state")
_PACIFIC = ZoneInfo("America/Los_Angeles")
_SHARED = "redis"  # the marker of a reservation made in Redis
# A virtual key's own windows are a real minute in buckets of a second, as in access/rates.py.
SCOPE_SPAN_MS, SCOPE_WIDTH_MS = 60_000, 1_000


def _divided(limits: Limits, replicas: int) -> Limits:
    if replicas <= 1:
        return limits

    def part(value: int | None) -> int | None:
        return None if value is None else max(1, value // replicas)

    return Limits(part(limits.rpm), part(limits.tpm), part(limits.rpd))


def _divided_scope(scope: Scope, replicas: int) -> Scope:
    limits = _divided(Limits(scope.rpm, scope.tpm), replicas)
    return Scope(scope.name, limits.rpm, limits.tpm)


def _ms_left_in_pacific_day() -> int:
    local = datetime.now(_PACIFIC)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int((midnight - local).total_seconds() * 1000)


def _day_name() -> str:
    return str(datetime.now(_PACIFIC).date())


class RedisRateState:
    def __init__(self, link: Link, minute_s: float = 60.0, margin_s: float = 0.5,
                 day_s: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.link = link
        self.span_ms = int((minute_s + margin_s) * 1000)
        self.width_ms = max(1, int(minute_s * 1000 / 60))
        self.day_span_ms = int((day_s + margin_s) * 1000) if day_s is not None else 0
        self.local = (MemoryRateState(minute_s, margin_s, day_s, clock) if clock else
                      MemoryRateState(minute_s, margin_s, day_s))
        self._script = link.client.register_script(RESERVE)
        self._adjust = link.client.register_script(ADJUST)
        self._merge = link.client.register_script(MERGE)
        self.on_room: Callable[[str], None] = lambda model: None  # set by the scheduler's owner
        self._local_counts: dict[tuple[str, str], list[int]] = {}  # counted while away
        self.seen: set[tuple[str, str]] = set()  # (project, model) admitted here: for metrics
        link.on_up(self.reconcile)

    def _keys(self, project: str, model: str) -> list[str]:
        day = "day" if self.day_span_ms else _day_name()
        key = self.link.key
        return [key("q", project, model, "rpm"), key("q", project, model, "tpm"),
                key("q", project, model, "rpd", day)]

    async def reserve(self, model: str, tokens: int, candidates: Iterable[tuple[str, Limits]],
                      scopes: tuple[Scope, ...] = ()) -> tuple[Reservation | None, float]:
        listed = list(candidates)
        if not listed:
            return None, float("inf")
        try:
            return await self._shared(model, tokens, listed, scopes)
        except Down:
            return await self._local(model, tokens, listed, scopes)

    def scope_keys(self, scope: Scope) -> list[str]:
        """A scope's windows: the same keys as the key counters' (state/redis/counters.py)."""
        return [self.link.key("k", scope.name, "rpm"), self.link.key("k", scope.name, "tpm")]

    async def _shared(self, model: str, tokens: int, listed: list[tuple[str, Limits]],
                      scopes: tuple[Scope, ...]) -> tuple[Reservation | None, float]:
        keys: list[str] = []
        args: list[int] = [tokens, self.span_ms, self.width_ms, self.day_span_ms,
                           0 if self.day_span_ms else _ms_left_in_pacific_day(), len(listed),
                           len(scopes), SCOPE_SPAN_MS, SCOPE_WIDTH_MS]
        for project, limits in listed:
            keys += self._keys(project, model)
            args += [limits.rpm or 0, limits.tpm or 0, limits.rpd or 0]
        for scope in scopes:
            keys += self.scope_keys(scope)
            args += [scope.rpm or 0, scope.tpm or 0]
        found = await self.link.call(self._script(keys=keys, args=args))
        index, *rest = (int(v) for v in found)
        if index == -2:
            raise ScopeFull(scopes[0], rest[0] / 1000)
        if index < 0:
            return None, rest[0] / 1000
        project, limits = listed[index]
        self.seen.add((project, model))
        bucket, day_bucket, scope_bucket = rest
        project_keys = keys[index * 3: index * 3 + 3]
        changes = []  # (key, bucket or '', amount counted): what a cancel gives back
        if limits.rpm:
            changes.append((project_keys[0], str(bucket), 1))
        if limits.tpm:
            changes.append((project_keys[1], str(bucket), tokens))
        if limits.rpd:
            changes.append((project_keys[2], str(day_bucket) if self.day_span_ms else "", 1))
        for scope in scopes:
            requests, counted = self.scope_keys(scope)
            if scope.rpm:
                changes.append((requests, str(scope_bucket), 1))
            if scope.tpm:
                changes.append((counted, str(scope_bucket), tokens))
        return Reservation(project, model, tokens, [_SHARED, changes]), 0.0

    async def _local(self, model: str, tokens: int, listed: list[tuple[str, Limits]],
                     scopes: tuple[Scope, ...]) -> tuple[Reservation | None, float]:
        replicas = self.link.config.replicas
        reservation, wait = await self.local.reserve(
            model, tokens, ((p, _divided(limits, replicas)) for p, limits in listed),
            tuple(_divided_scope(scope, replicas) for scope in scopes))
        if reservation is not None:
            counts = self._local_counts.setdefault((reservation.project, model), [0, 0])
            counts[0] += 1
            counts[1] += tokens
        return reservation, wait

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        handles = reservation.handles
        if not handles or handles[0] != _SHARED:
            await self.local.settle(reservation, tokens)
            return
        changes = [(key, bucket, tokens - counted) for key, bucket, counted in handles[1]
                   if key.endswith(":tpm") and tokens != counted]
        if changes:
            await self._apply(changes, reservation.model)
            handles[1] = [(key, bucket, tokens if key.endswith(":tpm") else counted)
                          for key, bucket, counted in handles[1]]

    async def cancel(self, reservation: Reservation) -> None:
        handles = reservation.handles
        if not handles or handles[0] != _SHARED:
            await self.local.cancel(reservation)
            return
        await self._apply([(key, bucket, -counted) for key, bucket, counted in handles[1]],
                          reservation.model)
        handles.clear()

    async def _apply(self, changes: list[tuple[str, str, int]], model: str) -> None:
        """One round trip: the corrections, and word to the queues if room was freed."""
        args: list[str | int] = []
        for _, bucket, change in changes:
            args += [bucket, change]
        args += [self.link.key("room"), model]
        keys = [c[0] for c in changes] + [self.link.key("waiting", model)]
        with contextlib.suppress(Down):  # the window forgets it in a minute: the safe side
            await self.link.call(self._adjust(keys=keys, args=args))

    async def waiting(self, model: str, change: int) -> None:
        key = self.link.key("waiting", model)
        pipe = self.link.client.pipeline(transaction=True)
        pipe.incrby(key, change)
        pipe.expire(key, 600)  # a replica that died while requests waited: forgotten soon
        with contextlib.suppress(Down):
            await self.link.call(pipe.execute())

    async def in_use(self) -> dict[tuple[str, str, str], int]:
        """What the shared windows hold now, by (project, model, rpm | tpm | rpd), for the
        project and model pairs this replica has admitted to: one pipelined round trip, at
        scrape time."""
        pairs = sorted(self.seen)
        pipe = self.link.client.pipeline(transaction=False)
        pipe.time()
        for project, model in pairs:
            rpm, tpm, rpd = self._keys(project, model)
            pipe.hgetall(rpm)
            pipe.hgetall(tpm)
            pipe.hgetall(rpd) if self.day_span_ms else pipe.get(rpd)
        try:
            answers = await self.link.call(pipe.execute())
        except Down:  # what this replica counts on its own meanwhile
            return self.local.in_use()
        seconds, micros = answers[0]
        now = int(seconds) * 1000 + int(micros) // 1000
        found: dict[tuple[str, str, str], int] = {}
        for n, (project, model) in enumerate(pairs):
            rpm, tpm, rpd = answers[1 + n * 3: 4 + n * 3]
            found[(project, model, "rpm")] = self._live(rpm, now, self.span_ms, self.width_ms)
            found[(project, model, "tpm")] = self._live(tpm, now, self.span_ms, self.width_ms)
            found[(project, model, "rpd")] = (
                self._live(rpd, now, self.day_span_ms, self.day_span_ms // 60)
                if self.day_span_ms else int(rpd or 0))
        return found

    @staticmethod
    def _live(buckets: dict[Any, Any], now: int, span: int, width: int) -> int:
        """A window's total: the buckets whose end is not older than the window."""
        return sum(int(amount) for start, amount in (buckets or {}).items()
                   if int(start) + width > now - span)

    async def listen(self) -> None:
        """Wakes this replica's queues when another replica frees room (until cancelled)."""
        while True:
            try:
                pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.link.key("room"))
                async for message in pubsub.listen():
                    self.on_room(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)

    async def reconcile(self) -> None:
        """Adds what this replica counted while Redis was away into the shared windows."""
        counted, self._local_counts = self._local_counts, {}
        for (project, model), (requests, tokens) in counted.items():
            keys = self._keys(project, model)[:2]
            await self.link.call(self._merge(keys=keys, args=[self.span_ms, self.width_ms,
                                                              requests, tokens]))
        if counted:
            log.warning("merged %d project windows counted locally into Redis", len(counted))
