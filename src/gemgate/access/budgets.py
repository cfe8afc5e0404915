"""Daily and monthly budgets of virtual keys, enforced from counters kept in memory.

A counter starts from the ledger's rollup (what the period has already cost) and then grows
with every recorded request, so admission never waits for the database. Periods are calendar
days and months in the configured time zone; a new period starts a new counter.

A request reserves its estimated cost before it goes upstream and settles the real cost when it
ends (a failure settles 0: the reservation is given back). It is admitted while the key's spend
plus what requests in flight have reserved is below the budget: requests running at the same
time see each other's reservations, so together they overshoot the budget by at most the one
request that crosses the line (whose cost is not known before it runs), never by their number.
With Redis (state/redis/counters.py) the same rule holds across replicas.

At `alert_at` (80% by default) and at 100%, an alert goes to the log and, when configured, to a
webhook, once per key, period and level.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gemgate.access.vkeys import VirtualKey

Kind = Literal["daily", "monthly"]
KINDS: tuple[Kind, ...] = ("daily", "monthly")


@dataclass(frozen=True, slots=True)
class Period:
    kind: Kind
    start: float  # unix seconds
    end: float


@dataclass(slots=True)
class Spend:
    period: Period
    usd: float = 0.0
    reserved: float = 0.0  # estimates of requests in flight
    alerted: set[str] = field(default_factory=set)  # levels already announced this period


@dataclass(slots=True)
class Hold:
    """A request's reservation: the estimate, on the counters of the periods it was made in."""

    usd: float
    spends: list[Spend]


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a key is refused: which budget, how much was spent, when it resets."""

    kind: Kind
    budget_usd: float
    spent_usd: float
    resets_at: float


def limit_of(key: VirtualKey, kind: Kind) -> float | None:
    return key.spec.daily_budget_usd if kind == "daily" else key.spec.monthly_budget_usd


class Budgets:
    def __init__(self, timezone: str = "UTC", alert_at: float = 0.8,
                 alert: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.zone = ZoneInfo(timezone)
        self.alert_at = alert_at
        self.alert = alert or (lambda event: None)
        self.clock = clock
        self._spend: dict[tuple[str, Kind], Spend] = {}

    def period(self, kind: Kind, now: float) -> Period:
        local = datetime.fromtimestamp(now, self.zone)
        if kind == "daily":
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            end = start + timedelta(days=1)  # wall-clock arithmetic: the next midnight, DST or not
        else:
            start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            end = (start + timedelta(days=32)).replace(day=1)
        return Period(kind, start.timestamp(), end.timestamp())

    def needs_start(self, key: VirtualKey) -> list[Period]:
        """The periods of this key's budgets with no counter yet (to be read from the ledger)."""
        now = self.clock()
        wanted = []
        for kind in KINDS:
            if limit_of(key, kind) is None:
                continue
            spend = self._spend.get((key.id, kind))
            period = self.period(kind, now)
            if spend is None or spend.period != period:
                wanted.append(period)
        return wanted

    def start(self, key: VirtualKey, period: Period, spent_usd: float) -> None:
        """Sets a counter from what the ledger says the period has cost so far. Levels already
        passed count as announced, so a restart does not repeat alerts."""
        spend = self._spend.get((key.id, period.kind))
        if spend is not None and spend.period == period:
            return  # counted meanwhile: the live counter already includes the ledger's view
        spend = Spend(period, spent_usd)
        self._spend[(key.id, period.kind)] = spend
        limit = limit_of(key, period.kind)
        if limit:
            spend.alerted.update(level for level, share in self._levels()
                                 if spent_usd >= limit * share)

    def _levels(self) -> tuple[tuple[str, float], ...]:
        return (("alert", self.alert_at), ("exhausted", 1.0))

    def _current(self, key_id: str, kind: Kind, now: float) -> Spend:
        period = self.period(kind, now)
        spend = self._spend.get((key_id, kind))
        if spend is None or spend.period != period:
            spend = self._spend[(key_id, kind)] = Spend(period)
        return spend

    def _tracked(self, key: VirtualKey) -> Iterator[tuple[Kind, float, Spend]]:
        """Each budget the key has, with this period's counter."""
        now = self.clock()
        for kind in KINDS:
            limit = limit_of(key, kind)
            if limit is not None:
                yield kind, limit, self._current(key.id, kind, now)

    def check(self, key: VirtualKey) -> Stop | None:
        for kind, limit, spend in self._tracked(key):
            if spend.usd + spend.reserved >= limit:
                return Stop(kind, limit, spend.usd, spend.period.end)
        return None

    def reserve(self, key: VirtualKey, usd: float) -> Stop | Hold:
        """A Stop when a budget has no room left (spent and reserved), else the hold."""
        tracked = list(self._tracked(key))
        for kind, limit, spend in tracked:
            if spend.usd + spend.reserved >= limit:
                return Stop(kind, limit, spend.usd, spend.period.end)
        for _, _, spend in tracked:
            spend.reserved += usd
        return Hold(usd, [spend for _, _, spend in tracked])

    def settle(self, key: VirtualKey, hold: Hold | None, usd: float) -> None:
        """The real cost replaces the hold's estimate (0 gives the hold back)."""
        if hold is not None:
            for spend in hold.spends:
                spend.reserved = max(0.0, spend.reserved - hold.usd)
        self.add(key, usd)

    def add(self, key: VirtualKey, usd: float, announce: bool = True) -> None:
        if usd <= 0:
            return
        for kind, limit, spend in self._tracked(key):
            spend.usd += usd
            for level, share in self._levels():
                if spend.usd >= limit * share and level not in spend.alerted:
                    spend.alerted.add(level)
                    if announce:
                        self.alert(self._event(level, key, kind, limit, spend))

    def announce(self, key: VirtualKey, kind: Kind, level_index: int, spent_usd: float) -> None:
        """An alert another backend decided (Redis: the replica whose request crossed)."""
        limit = limit_of(key, kind)
        level = self._levels()[level_index][0]
        spend = self._current(key.id, kind, self.clock())
        spend.alerted.add(level)
        shown = Spend(spend.period, spent_usd)
        self.alert(self._event(level, key, kind, limit or 0.0, shown))

    def used(self, keys: list[VirtualKey]) -> dict[tuple[str, Kind], float]:
        """Each budget's share spent this period, by (key name, period): for metrics."""
        found = {}
        for key in keys:
            for kind in KINDS:
                limit = limit_of(key, kind)
                if limit:
                    found[(key.name, kind)] = self.spent(key.id, kind) / limit
        return found

    def spent(self, key_id: str, kind: Kind) -> float:
        spend = self._spend.get((key_id, kind))
        if spend is None or spend.period != self.period(kind, self.clock()):
            return 0.0
        return spend.usd

    def _event(self, level: str, key: VirtualKey, kind: Kind, limit: float,
               spend: Spend) -> dict[str, Any]:
        start = datetime.fromtimestamp(spend.period.start, self.zone)
        return {"event": f"budget_{level}", "key_id": key.id, "key_name": key.name,
                "owner": key.spec.owner, "period": kind, "period_start": start.isoformat(),
                "budget_usd": limit, "spent_usd": round(spend.usd, 9),
                "percent": round(100 * spend.usd / limit, 1) if limit else 100.0}
