"""The meter stage: turns a finished request into its ledger record, charges its cost to the
key's budgets, and holds the response's last byte until the record is committed.

Cost follows usage: Google reports usageMetadata only for what it generated, so a failed
request costs nothing, and a stream that ended early (the client left, or the upstream broke)
costs what its last chunk reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gemgate.access.counters import KeyCounters
from gemgate.core.call import Call
from gemgate.core.events import Finished
from gemgate.ledger.record import Record
from gemgate.pipeline.charges import Charge
from gemgate.prices import PriceBook, Tokens
from gemgate.problems import ProblemId
from gemgate.scheduling.estimate import OutputGuess
from gemgate.storage import LedgerStore
from gemgate.usage import modalities_of

log = logging.getLogger("gemgate.meter")
GEMINI = "gemini"


class Meter:
    def __init__(self, ledger: LedgerStore | None, prices: PriceBook, counters: KeyCounters,
                 unbilled_projects: frozenset[str], commit_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 outputs: OutputGuess | None = None) -> None:
        self.ledger, self.prices, self.counters = ledger, prices, counters
        self.outputs = outputs or OutputGuess()  # learns answers' length for budget holds
        self.unbilled_projects = unbilled_projects  # free tier: Google bills nothing
        self.commit_timeout_s = commit_timeout_s
        self.clock = clock

    def cost(self, call: Call, tokens: Tokens) -> float:
        """USD the request cost upstream: 0 for a cache hit (no upstream), a free-tier
        project's call (Google bills nothing, unless ledger.price_free_tier), or no usage."""
        if call.cache in ("HIT", "SEMANTIC-HIT") or not (tokens.total or tokens.prompt):
            return 0.0
        last = call.attempts[-1] if call.attempts else None
        if last is not None and last.provider is None and last.project in self.unbilled_projects:
            return 0.0
        return self.prices.cost(call.model, tokens)  # a provider's model: `<name>/<model>`

    async def record(self, call: Call, status: int, problem: ProblemId | None,
                     usage: dict[str, Any] | None,
                     cancelled: bool = False) -> asyncio.Future[None] | None:
        """Charges the request to its key and queues its record; the future resolves when the
        record is durable (None when there is nothing to await)."""
        if call.tenant is None:  # refused before we knew who called: the access log has it
            return None
        charge = await self._charge(call)
        if charge is not None:
            usage = charge.tokens()
        if call.hedge_usage:  # a hedged call's losing attempt was billed too
            usage = with_hedge(usage, call.hedge_usage)
        tokens = Tokens.of(usage)
        last = call.attempts[-1] if call.attempts else None
        provider = (last.provider if last else None) or GEMINI
        project = last.project if last and last.provider is None else None
        cost = call.cost_usd = charge.cost(self.prices) if charge is not None else \
            self.cost(call, tokens)
        hit = call.cache in ("HIT", "SEMANTIC-HIT")
        key = call.tenant.key
        if (tokens.candidates or tokens.thoughts) and not hit:
            self.outputs.observe(call.model, tokens.candidates + tokens.thoughts)
        if key is not None:
            if call.budget_hold is not None or cost > 0:
                hold, call.budget_hold = call.budget_hold, None  # settled once
                await self.counters.settle_budget(key, hold, cost)
            if call.key_tokens is not None and tokens.prompt and call.estimated_tokens:
                await self.counters.settle(key, call.key_tokens, call.estimated_tokens,
                                           tokens.prompt)
        if self.ledger is None:
            return None
        elapsed_ms = call.elapsed_ms()
        record = Record(
            ts=self.clock() - elapsed_ms / 1000, request_id=call.request_id,
            tenant=call.tenant.name, vkey_id=key.id if key else None, provider=provider,
            project=project, key_mask=last.masked_key if last else None,
            model_asked=call.model_asked or call.model or None,
            model_used=call.model if last else None, action=call.action or None,
            status=status, problem=problem, **Record.with_tokens(tokens), cost_usd=cost,
            latency_ms=round(elapsed_ms, 2), stream=call.stream, cancelled=cancelled,
            attempts=len(call.attempts), attempt_log=_attempt_log(call),
            priority=call.priority, client_ip=call.client_ip, cache=call.cache,
            saved_usd=call.cache_saved_usd if hit else 0.0, modalities=modalities_of(usage),
            guarded=call.guarded.summary() if call.guarded is not None else None)
        return self.ledger.add(record, wait=not cancelled)

    async def _charge(self, call: Call) -> Charge | None:
        """What Google bills beyond the call's own usage (pipeline/charges.py): the call's row
        becomes its record (its action and model). None for other calls, and for a charge to
        be counted once that was counted already — by an earlier call, on any replica."""
        charge: Charge | None = call.charge
        if charge is None or (charge.once is not None and (
                self.ledger is None or not await self.ledger.claim_once(charge.once))):
            return None
        call.action, call.model = charge.action, charge.model
        return charge

    async def commit(self, call: Call, status: int, problem: ProblemId | None,
                     usage: dict[str, Any] | None) -> None:
        """Records the request and waits for the commit — up to `commit_timeout_s`: a stalled
        disk must not hold answers hostage (the record stays queued and is written later)."""
        future = await self.record(call, status, problem, usage)
        if future is None:
            return
        try:
            # A timeout cancels only this wait: the record is already in the writer's batch.
            async with asyncio.timeout(self.commit_timeout_s):
                await future
        except TimeoutError:
            log.error("ledger commit of request %s took over %.1fs; answering anyway",
                      call.request_id, self.commit_timeout_s)

    def on_finished(self, call: Call, event: Finished) -> Awaitable[None] | None:
        """The Events recorder: a finished request's record, committed (awaited by the
        pipeline before the answer's last byte); a cancelled one's only queued (its client is
        gone: Events runs it in the background)."""
        if event.cancelled:
            return self._cancelled(call, event)
        return self.commit(call, event.status, event.problem, event.usage)

    async def _cancelled(self, call: Call, event: Finished) -> None:
        await self.record(call, 499, event.problem, event.usage, cancelled=True)


def with_hedge(usage: dict[str, Any] | None, extra: dict[str, int]) -> dict[str, Any]:
    """The winner's usage with the losing attempt's counts added (what Google bills)."""
    total = dict(usage or {})
    for name, count in extra.items():
        total[name] = (total.get(name) or 0) + count
    return total


def _attempt_log(call: Call) -> str | None:
    if not call.attempts:
        return None
    return ";".join(f"{a.project}/{a.status}/{a.upstream_ms:.0f}ms"
                    + (f"/{a.problem}" if a.problem else "") for a in call.attempts)
