"""Shared state behind one interface: counters and windows that every replica must agree on.

`memory.MemoryRateState` serves one process; a Redis or PostgreSQL implementation of the same
protocol lets several replicas share limits without changing the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Limits:
    """A project's limits for one model, as gemgate paces them (None: no limit)."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # input tokens per minute
    rpd: int | None = None  # requests per day (Pacific)


@dataclass(slots=True)
class Reservation:
    """Room taken in a project's windows for one attempt, until its real usage is known.
    `handles` is the backend's own (opaque to everyone else)."""

    project: str
    model: str
    tokens: int
    handles: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scope:
    """A window that every attempt of a request counts in besides its project's: a virtual
    key's own RPM/TPM over a real minute, whatever the model or project."""

    name: str
    rpm: int | None
    tpm: int | None


class ScopeFull(Exception):
    """A scope has no room: the request is refused at once (the key is over its own limit)."""

    def __init__(self, scope: Scope, wait_s: float) -> None:
        super().__init__(scope.name)
        self.scope, self.wait_s = scope, wait_s


class RateState(Protocol):
    """Rate windows and reservations, one call per decision (a network backend answers each
    with one round trip, e.g. one Lua script): the caller hands the candidate projects in its
    order of preference, the state reserves room in the first one whose windows all have it."""

    async def reserve(self, model: str, tokens: int, candidates: Iterable[tuple[str, Limits]],
                      scopes: tuple[Scope, ...] = ()) -> tuple[Reservation | None, float]:
        """A reservation in the first candidate with room now (`reservation.project` names
        it), counted in every scope too, all at once; else None and the seconds until the
        soonest room. Raises ScopeFull when a scope has no room."""

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replaces the estimated input tokens with what Google counted."""

    async def cancel(self, reservation: Reservation) -> None:
        """Gives the room back: Google never counted the attempt."""

    async def waiting(self, model: str, change: int) -> None:
        """Requests for `model` queued in this process: +1 as one starts waiting, -1 as it
        stops. A shared state tells replicas of freed room only while someone waits."""
