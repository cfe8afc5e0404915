"""Slots: things open at once, counted against a limit, shared by every replica.

A Live session holds a slot in its tenant's scope and in its project's (Google limits a
project's concurrent Live sessions as it limits its requests per minute). A slot is held with a
lease: its holder renews it while the session lives, so a replica that dies mid-session frees its
slots when their leases run out instead of holding them for ever.

`MemorySlots` serves one process; `state.redis.slots.RedisSlots` serves replicas (one script
call per decision, timed by Redis's clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

LEASE_S = 60.0  # a holder renews every third of this


class Slots(Protocol):
    async def take(self, scope: str, holder: str, limit: int) -> bool:
        """Takes a slot in `scope` for `holder` when fewer than `limit` are held: True if so."""

    async def renew(self, scope: str, holder: str) -> None:
        """Extends a held slot's lease by LEASE_S from now."""

    async def give(self, scope: str, holder: str) -> None:
        """Frees a slot (nothing when it is not held)."""

    async def count(self, scope: str) -> int:
        """Slots held in `scope` now."""


class MemorySlots:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[str, dict[str, float]] = {}  # scope → holder → lease end

    def _live(self, scope: str) -> dict[str, float]:
        held = self._held.setdefault(scope, {})
        now = self.clock()
        for holder in [h for h, end in held.items() if end <= now]:
            del held[holder]
        return held

    async def take(self, scope: str, holder: str, limit: int) -> bool:
        held = self._live(scope)
        if holder not in held and len(held) >= limit:
            return False
        held[holder] = self.clock() + LEASE_S
        return True

    async def renew(self, scope: str, holder: str) -> None:
        held = self._live(scope)
        if holder in held:
            held[holder] = self.clock() + LEASE_S

    async def give(self, scope: str, holder: str) -> None:
        held = self._held.get(scope)
        if held is not None:
            held.pop(holder, None)
            if not held:
                del self._held[scope]

    async def count(self, scope: str) -> int:
        return len(self._live(scope))
