"""Admission: before an attempt goes upstream, reserve room in a project's windows for its model.

Projects are tried cheapest first (free before paid); classes that may not spill into paid quota
wait for free quota. When no project has room the request waits in a queue, served in priority
order (high, normal, low, batch) and, within a class, fairly between tenants by weight, until
room appears or its patience runs out.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

from gemgate.problems import ProblemId
from gemgate.scheduling.limits import LimitBook
from gemgate.state import RateState, Reservation, Scope, ScopeFull
from gemgate.upstream.pool import KeyPool, ProjectState, set_aside

PRIORITIES = {"high": 0, "normal": 1, "low": 2, "batch": 3}
_TIER_COST = {"free": 0, "tier1": 1, "tier2": 2, "tier3": 3}


@dataclass(slots=True)
class Grant:
    project: str
    reservation: Reservation


@dataclass(slots=True)
class NoRoom:
    """Why admission failed: no room in time, every project cooling, or no usable key."""

    problem: ProblemId  # NO_QUOTA_ROOM, ALL_PROJECTS_COOLING, NO_HEALTHY_KEYS, KEY_RATE_LIMITED
    retry_after_s: float | None = None


@dataclass(slots=True)
class Ask:
    """What admission needs to know about one attempt."""

    model: str
    tokens: int
    priority: str = "normal"
    tenant: str = "anonymous"
    weight: float = 1.0
    only: str | None = None  # a project that owns a referenced resource
    exclude: frozenset[str] = frozenset()
    tried: frozenset[str] = frozenset()  # failed this call already: others are preferred
    scopes: tuple[Scope, ...] = ()  # counted with the project, in the same decision


@dataclass(slots=True)
class _Waiter:
    ask: Ask
    rank: int
    seq: int
    future: asyncio.Future[Grant | NoRoom]
    estimate: float = 0.0


@dataclass(slots=True)
class _Queue:
    waiters: list[_Waiter] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    pumping: bool = False  # a pass over the queue is running
    again: bool = False  # room may have appeared during it: go round once more


class Scheduler:
    def __init__(self, state: RateState, limits: LimitBook, pool: KeyPool,
                 spill: frozenset[str] = frozenset({"high", "normal"})) -> None:
        self.state, self.limits, self.pool, self.spill = state, limits, pool, spill
        self._queues: dict[str, _Queue] = {}
        self._virtual: dict[str, float] = {}  # per tenant: service received, over weight
        self._seq = itertools.count()
        self._tasks: set[asyncio.Future[None]] = set()  # pumps and settlements in flight

    # ---- the decision ---------------------------------------------------------------------

    def _candidates(self, ask: Ask) -> list[ProjectState]:
        projects = [p for p in self.pool.usable() if p.name not in ask.exclude
                    and (ask.only is None or p.name == ask.only)]
        if ask.priority not in self.spill and any(p.tier == "free" for p in projects):
            projects = [p for p in projects if p.tier == "free"]
        # Projects this call has not failed on yet first (a retry should not meet the same hung
        # connection or overloaded project); then the cheapest; among equals, the least busy and
        # least recently used (as the pool would choose), so load spreads over a tier.
        # Projects set aside as outliers (repeated 5xx) come after every other.
        now = self.pool.clock()
        return sorted(projects, key=lambda p: (p.name in ask.tried,
                                               set_aside(p.outlier, p.in_flight, now),
                                               _TIER_COST.get(p.tier, 9), p.in_flight,
                                               p.last_used))

    async def try_now(self, ask: Ask) -> tuple[Grant | NoRoom | None, float]:
        """A grant if some project has room now; a refusal if none ever will; else None and
        the seconds until the soonest room. One call to the rate state, whatever the number of
        projects."""
        candidates = self._candidates(ask)
        if not candidates:
            return NoRoom(ProblemId.NO_HEALTHY_KEYS), 0.0
        now = self.pool.clock()
        soonest = float("inf")
        open_now = []
        for project in candidates:
            cooling = project.cooling_until(ask.model) - now
            if cooling > 0:
                soonest = min(soonest, cooling)
            else:
                open_now.append(project.name)
        if open_now:
            # Limits are looked up as the state walks the candidates: the memory state stops
            # at the first with room; a networked one reads them all for its one round trip.
            model, limits = ask.model, self.limits
            try:
                reservation, wait = await self.state.reserve(
                    model, ask.tokens, ((name, limits.of(name, model)) for name in open_now),
                    ask.scopes)
            except ScopeFull as full:  # the key is over its own limit: refused, not queued
                return NoRoom(ProblemId.KEY_RATE_LIMITED, full.wait_s), 0.0
            if reservation is not None:
                return Grant(reservation.project, reservation), 0.0
            soonest = min(soonest, wait)
        return None, soonest

    async def admit(self, ask: Ask, patience: float) -> Grant | NoRoom:
        queue = self._queues.get(ask.model)
        if queue is None or not queue.waiters:  # nobody ahead: no need to queue
            decided, soonest = await self.try_now(ask)
            if decided is not None:
                return decided
            if soonest > patience:
                return self._refusal(ask, soonest)
        return await self._wait(ask, patience)

    def _refusal(self, ask: Ask, soonest: float) -> NoRoom:
        cooling_only = all(p.cooling_until(ask.model) > self.pool.clock()
                           for p in self._candidates(ask))
        return NoRoom(ProblemId.ALL_PROJECTS_COOLING if cooling_only
                       else ProblemId.NO_QUOTA_ROOM, soonest)

    # ---- the queue ------------------------------------------------------------------------

    async def _wait(self, ask: Ask, patience: float) -> Grant | NoRoom:
        queue = self._queues.setdefault(ask.model, _Queue())
        # A tenant arriving (or back from idling) starts level with the least served of those
        # waiting: credit saved while idle must not let a burst starve everyone else.
        floor = min((self._virtual.get(w.ask.tenant, 0.0) for w in queue.waiters), default=0.0)
        self._virtual[ask.tenant] = max(self._virtual.get(ask.tenant, 0.0), floor)
        future: asyncio.Future[Grant | NoRoom] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(ask, PRIORITIES.get(ask.priority, 1), next(self._seq), future)
        queue.waiters.append(waiter)
        await self.state.waiting(ask.model, 1)
        try:
            self.pump(ask.model)
            if not future.done():
                await asyncio.wait({future}, timeout=max(0.0, patience))
        finally:
            await self.state.waiting(ask.model, -1)
        if future.done():
            return future.result()
        future.cancel()
        if waiter in queue.waiters:
            queue.waiters.remove(waiter)
        return self._refusal(ask, waiter.estimate)

    def pump(self, model: str) -> None:
        """Serves the model's queue soon (room may have appeared)."""
        queue = self._queues.get(model)
        if queue is None:
            return
        if queue.pumping:  # one pass at a time; the running one goes round again
            queue.again = True
            return
        queue.pumping = True
        task = asyncio.ensure_future(self._pump(model, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, model: str, queue: _Queue) -> None:
        """Serves waiting requests in order while there is room; sets a timer for the rest."""
        try:
            while True:
                queue.again = False
                await self._serve(model, queue)
                if not queue.again:
                    return
        finally:
            queue.pumping = False

    async def _serve(self, model: str, queue: _Queue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
            queue.timer = None
        order = sorted(queue.waiters, key=lambda w: (w.rank, self._virtual.get(w.ask.tenant, 0.0),
                                                     w.seq))
        soonest = float("inf")
        for waiter in order:
            if waiter.future.done():
                if waiter in queue.waiters:
                    queue.waiters.remove(waiter)
                continue
            decided, wait = await self.try_now(waiter.ask)
            if decided is None:
                waiter.estimate = wait
                soonest = min(soonest, wait)
                continue
            if waiter in queue.waiters:
                queue.waiters.remove(waiter)
            if waiter.future.done():  # gave up meanwhile: the room goes back
                if isinstance(decided, Grant):
                    await self.state.cancel(decided.reservation)
                continue
            if isinstance(decided, Grant):
                self._virtual[waiter.ask.tenant] = (self._virtual.get(waiter.ask.tenant, 0.0)
                                                    + 1.0 / max(waiter.ask.weight, 0.01))
            waiter.future.set_result(decided)
        if queue.waiters and soonest < float("inf"):
            queue.timer = asyncio.get_running_loop().call_later(soonest + 0.001, self.pump,
                                                               model)

    # ---- after the attempt ----------------------------------------------------------------

    async def settle(self, grant: Grant, tokens: int | None, counted: bool) -> None:
        """Real usage replaces the estimate; an attempt Google never counted gives room back."""
        if not counted:
            await self.state.cancel(grant.reservation)
        elif tokens is not None and tokens != grant.reservation.tokens:
            await self.state.settle(grant.reservation, tokens)
        else:
            return
        self.pump(grant.reservation.model)
