"""A virtual key's counters, behind one async interface: its own RPM/TPM windows and its budget
spend. Every replica must agree on them (two replicas each letting a key spend its whole budget
is the bug other gateways ship), so a networked backend (Redis) stands behind the same calls —
one per decision. `MemoryCounters` is the embedded default: one process's windows and spend."""

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

    async def budget_stop(self, key: VirtualKey) -> Stop | None:
        """Why the key may spend no more now (a budget used up), or None."""

    async def spend(self, key: VirtualKey, usd: float) -> None:
        """Adds a request's cost to every budget period of the key."""


class MemoryCounters:
    def __init__(self, rates: KeyRates, budgets: Budgets) -> None:
        self.rates, self.budgets = rates, budgets

    async def admit(self, key: VirtualKey, tokens: int) -> tuple[float, Any]:
        return self.rates.admit(key, tokens)

    async def settle(self, key: VirtualKey, handle: Any, estimated: int, actual: int) -> None:
        self.rates.settle(key, handle, estimated, actual)

    async def budget_stop(self, key: VirtualKey) -> Stop | None:
        return self.budgets.check(key)

    async def spend(self, key: VirtualKey, usd: float) -> None:
        self.budgets.add(key, usd)
