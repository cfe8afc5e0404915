"""A virtual key's RPM/TPM windows and budgets in Redis, shared by every replica.

Windows use the quota script (one candidate: the key). Budgets are reservations: a request
holds its estimated cost in every budget period of its key in one script call, which refuses
when spent plus reserved has reached a limit — so N replicas hammering one key overshoot its
budget by at most the one request that crosses the line. Settling replaces the hold with the
real cost; a hold whose replica died is given back after `state.reservation_ttl_s`. The replica
whose settlement crosses 80% or 100% first sends the alert (once for all replicas).

While Redis is away (a documented, bounded overshoot): each replica serves the key's budgets
from its own counters, allowed 1/`state.replicas` of what was left of each budget when Redis was
last seen, so together they spend at most the budget plus one request each. When Redis returns,
what was spent meanwhile is added to the shared counters.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from gemgate.access.budgets import KINDS, Budgets, Kind, Stop, limit_of
from gemgate.access.rates import KeyRates
from gemgate.access.vkeys import VirtualKey
from gemgate.state.redis.link import Down, Link
from gemgate.state.redis.scripts import ADJUST, BUDGET_RESERVE, BUDGET_SETTLE, RESERVE

_MINUTE_MS, _BUCKET_MS = 60_000, 1_000


class RedisCounters:
    def __init__(self, link: Link, rates: KeyRates, budgets: Budgets) -> None:
        self.link, self.rates, self.budgets = link, rates, budgets
        self.ttl_ms = int(link.config.reservation_ttl_s * 1000)
        client = link.client
        self._reserve_rate = client.register_script(RESERVE)
        self._adjust = client.register_script(ADJUST)
        self._reserve = client.register_script(BUDGET_RESERVE)
        self._settle = client.register_script(BUDGET_SETTLE)
        self.away = Budgets(budgets.zone.key, 2.0, None, budgets.clock)  # no alerts from it
        self._away_keys: set[tuple[str, Kind]] = set()
        self._away_spent: dict[tuple[str, Kind, float], float] = {}
        link.on_up(self.reconcile)

    # ---- the key's own RPM and TPM ----------------------------------------------------------

    async def admit(self, key: VirtualKey, tokens: int) -> tuple[float, Any]:
        rpm, tpm = key.spec.rpm or 0, (key.spec.tpm or 0) if tokens else 0
        if not rpm and not tpm:
            return 0.0, None
        keys = [self.link.key("k", key.id, "rpm"), self.link.key("k", key.id, "tpm"),
                self.link.key("k", key.id, "rpd")]
        try:
            found = await self.link.call(self._reserve_rate(
                keys=keys, args=[tokens, _MINUTE_MS, _BUCKET_MS, 0, 0, 1, 0, 0, 0, rpm, tpm, 0]))
        except Down:
            return self.rates.admit(key, tokens)
        index, first, _ = (int(v) for v in (*found, 0)[:3])
        if index < 0:
            return first / 1000, None
        return 0.0, (keys[1], str(first)) if tpm else None

    async def settle(self, key: VirtualKey, handle: Any, estimated: int, actual: int) -> None:
        if not isinstance(handle, tuple):  # counted locally while Redis was away
            self.rates.settle(key, handle, estimated, actual)
            return
        window, bucket = handle
        with contextlib.suppress(Down):
            # No queue waits on a key's own window: the "waiting" count named is never set.
            await self.link.call(self._adjust(keys=[window, self.link.key("waiting", "")],
                                              args=[bucket, actual - estimated, "", ""]))

    # ---- budgets ----------------------------------------------------------------------------

    def _periods(self, key: VirtualKey) -> list[tuple[Kind, float, str]]:
        """(kind, limit, Redis key) of each budget the key has, for the current periods."""
        now = self.budgets.clock()
        found = []
        for kind in KINDS:
            limit = limit_of(key, kind)
            if limit is not None:
                period = self.budgets.period(kind, now)
                found.append((kind, limit, self.link.key("b", key.id, kind,
                                                         str(int(period.start)))))
        return found

    async def reserve_budget(self, key: VirtualKey, usd: float) -> tuple[Stop | None, Any]:
        periods = self._periods(key)
        hold = uuid.uuid4().hex[:16]
        args: list[Any] = [hold, repr(usd), self.ttl_ms]
        for kind, limit, _ in periods:
            # Where a period's shared counter starts if it has none yet: the ledger's figure.
            args += [repr(limit), repr(self.budgets.spent(key.id, kind))]
        keys = [self.link.key("b", key.id, "open"), *(p[2] for p in periods)]
        try:
            refused = await self.link.call(self._reserve(keys=keys, args=args))
        except Down:
            return self._reserve_away(key, usd)
        if refused:
            index, spent = int(refused[0]) - 1, float(refused[1])
            kind, limit, _ = periods[index]
            return Stop(kind, limit, spent, self.budgets.period(kind, self.budgets.clock()).end
                        ), None
        member = hold + "".join(f"[{k}]" for k in keys[1:]) + "|" + repr(usd)
        return None, ("redis", member, periods)

    async def settle_budget(self, key: VirtualKey, hold: Any, usd: float) -> None:
        if hold is not None and hold[0] == "away":
            self.away.settle(key, hold[1], usd)
            self._note_away(key, usd)
            return
        periods = hold[2] if hold is not None else self._periods(key)
        member = hold[1] if hold is not None else ""
        args: list[Any] = [member, repr(usd)]
        for _, limit, _ in periods:
            args += [repr(limit), repr(self.budgets.alert_at), "1"]
        keys = [self.link.key("b", key.id, "open"), *(p[2] for p in periods)]
        try:
            answer = await self.link.call(self._settle(keys=keys, args=args))
        except Down:
            self._note_away(key, usd)
            return
        self.budgets.add(key, usd, announce=False)  # this replica's view, for reports
        for (kind, _, _), spent, crossed in zip(periods, answer[::2], answer[1::2],
                                                strict=True):
            for level in crossed.decode() if isinstance(crossed, bytes) else crossed:
                self.budgets.announce(key, kind, int(level) - 1, float(spent))

    def _reserve_away(self, key: VirtualKey, usd: float) -> tuple[Stop | None, Any]:
        replicas = self.link.config.replicas
        now = self.budgets.clock()
        for kind in KINDS:
            limit = limit_of(key, kind)
            if limit is None or (key.id, kind) in self._away_keys:
                continue
            # This replica's share of what was left: the rest is the other replicas'.
            seen = self.budgets.spent(key.id, kind)
            self.away.start(key, self.budgets.period(kind, now),
                            limit - max(0.0, limit - seen) / replicas)
            self._away_keys.add((key.id, kind))
        held = self.away.reserve(key, usd)
        return (held, None) if isinstance(held, Stop) else (None, ("away", held))

    def _note_away(self, key: VirtualKey, usd: float) -> None:
        now = self.budgets.clock()
        for kind in KINDS:
            if limit_of(key, kind) is not None and usd > 0:
                start = self.budgets.period(kind, now).start
                self._away_spent[(key.id, kind, start)] = (
                    self._away_spent.get((key.id, kind, start), 0.0) + usd)
        self.budgets.add(key, usd)

    async def reconcile(self) -> None:
        """Adds what was spent while Redis was away to the shared counters."""
        spent, self._away_spent = self._away_spent, {}
        self._away_keys.clear()
        self.away = Budgets(self.budgets.zone.key, 2.0, None, self.budgets.clock)
        for (key_id, kind, start), usd in spent.items():
            await self.link.call(self.link.client.hincrbyfloat(
                self.link.key("b", key_id, kind, str(int(start))), "spent", usd))
