"""A virtual key's counters, behind one async interface: its own RPM/TPM windows and its budget
spend. Every replica must agree on them (two replicas each letting a key spend its whole budget
is the bug other gateways ship), so a networked backend (Redis, state/redis/counters.py) stands
behind the same calls — one per decision. `MemoryCounters` is the embedded default: one
process's windows and spend.

Budgets are reservations: `reserve_budget` holds a request's estimated cost before it goes
upstream, `settle_budget` replaces it with the real cost when the request is recorded (0 gives
it back), so requests in flight — on any replica — see each other."""

from __future__ import annotations

from typing import Any, Protocol

from gemgate.access.budgets import Budgets, Stop
from gemgate.access.rates import KeyRates
from gemgate.access.vkeys import VirtualKey


class KeyCounters(Protocol):
    async def admit(self, key: VirtualKey, tokens: int) -> tuple[float, Any]:
        """(0, a handle to correct the tokens later) when the request fits the key's RPM and
        TPM, else (seconds until it would fit, None); a refused request counts nothing."""

    async def settle(self, key: VirtualKey, handle: Any, estimated: int, actual: int) -> None:
        """The estimate replaced by the prompt tokens Google counted."""

    async def reserve_budget(self, key: VirtualKey, usd: float) -> tuple[Stop | None, Any]:
        """(None, a hold) when the key's budgets have room (spent and reserved below each
        limit), holding `usd`; else (why not, None)."""

    async def settle_budget(self, key: VirtualKey, hold: Any, usd: float) -> None:
        """The request's real cost replaces its hold (a None hold: only adds the cost)."""


class MemoryCounters:
    def __init__(self, rates: KeyRates, budgets: Budgets) -> None:
        self.rates, self.budgets = rates, budgets

    async def admit(self, key: VirtualKey, tokens: int) -> tuple[float, Any]:
        return self.rates.admit(key, tokens)

    async def settle(self, key: VirtualKey, handle: Any, estimated: int, actual: int) -> None:
        self.rates.settle(key, handle, estimated, actual)

    async def reserve_budget(self, key: VirtualKey, usd: float) -> tuple[Stop | None, Any]:
        held = self.budgets.reserve(key, usd)
        return (held, None) if isinstance(held, Stop) else (None, held)

    async def settle_budget(self, key: VirtualKey, hold: Any, usd: float) -> None:
        self.budgets.settle(key, hold, usd)
