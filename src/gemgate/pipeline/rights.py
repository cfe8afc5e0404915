"""The rights stage: what a virtual key may do — which models, how fast, how much spend.

Runs after routing (so an alias or `auto` is judged by the model it became) and before any
upstream attempt. Configured tokens have no such limits and pass straight through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from gemgate.access.counters import KeyCounters
from gemgate.access.vkeys import VirtualKey
from gemgate.core.call import Call
from gemgate.core.refusal import Refusal
from gemgate.pipeline.guard import MODEL_ACTIONS
from gemgate.prices import PriceBook, Tokens
from gemgate.problems import ProblemId
from gemgate.scheduling.estimate import OutputGuess, estimate_tokens
from gemgate.state import Scope


def over_own_limit(key: VirtualKey, wait_s: float) -> Refusal:
    limits = ", ".join(f"{n} {v}" for n, v in (("RPM", key.spec.rpm), ("TPM", key.spec.tpm))
                       if v)
    return Refusal(ProblemId.KEY_RATE_LIMITED, 429,
                   f"Virtual key {key.name!r} is over its own rate limit ({limits}).", wait_s)


class Rights:
    def __init__(self, counters: KeyCounters, zone: ZoneInfo, prices: PriceBook,
                 outputs: OutputGuess,
                 in_admission: Callable[[Call], bool] = lambda call: False) -> None:
        self.counters, self.zone = counters, zone
        self.prices, self.outputs = prices, outputs
        # Whether admission counts this call's key windows together with its project's, in
        # one decision (a shared state: one round trip, atomic across replicas).
        self.in_admission = in_admission

    def _estimated_cost(self, call: Call) -> float:
        """What the request will probably cost: its input estimated locally, its output as
        long as this model's recent answers (the hold a budget reserves)."""
        if call.action not in MODEL_ACTIONS or call.action == "countTokens":
            return 0.0
        if call.estimated_tokens is None:
            call.estimated_tokens = estimate_tokens(call.parsed)
        output = self.outputs.guess(call.model, call.parsed) if "Content" in call.action else 0
        return self.prices.cost(call.model, Tokens(prompt=call.estimated_tokens,
                                                   candidates=output))

    async def check(self, call: Call) -> Refusal | None:
        key = call.tenant.key if call.tenant is not None else None
        if key is None:
            return None
        if call.model and not key.allows_model(call.model):
            return Refusal(ProblemId.MODEL_NOT_ALLOWED, 403,
                           f"Virtual key {key.name!r} may not use model {call.model}; it may "
                           f"use: {', '.join(key.spec.models)}.")
        stop = None
        if key.spec.daily_budget_usd is not None or key.spec.monthly_budget_usd is not None:
            stop, call.budget_hold = await self.counters.reserve_budget(
                key, self._estimated_cost(call))
        if stop is not None:
            resets = datetime.fromtimestamp(stop.resets_at, self.zone)
            return Refusal(ProblemId.BUDGET_EXCEEDED, 429,
                           f"Virtual key {key.name!r} has spent {stop.spent_usd:.6f} USD of its "
                           f"{stop.kind} budget of {stop.budget_usd:.6f} USD; the budget resets "
                           f"at {resets.isoformat(timespec='seconds')}.",
                           max(1.0, stop.resets_at - time.time()))
        if call.action not in MODEL_ACTIONS:
            return None
        if (key.spec.rpm is not None or key.spec.tpm is not None) and self.in_admission(call):
            call.key_scope = Scope(key.id, key.spec.rpm, key.spec.tpm)
            return None
        tokens = 0
        if key.spec.tpm is not None and call.action != "countTokens":
            if call.estimated_tokens is None:
                call.estimated_tokens = estimate_tokens(call.parsed)
            tokens = call.estimated_tokens
        wait, call.key_tokens = await self.counters.admit(key, tokens)
        return over_own_limit(key, wait) if wait > 0 else None

