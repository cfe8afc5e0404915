"""Shared state behind one interface: counters and windows that every replica must agree on.

`memory.MemoryRateState` serves one process; a Redis or PostgreSQL implementation of the same
protocol lets several replicas share limits without changing the pipeline.
"""

from __future__ import annotations

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
    """Room taken in a project's windows for one attempt, until its real usage is known."""

    project: str
    model: str
    tokens: int
    handles: list[Any] = field(default_factory=list)


class RateState(Protocol):
    def try_reserve(self, project: str, model: str, tokens: int,
                    limits: Limits) -> tuple[Reservation | None, float]:
        """A reservation when every limit has room now; else None and the seconds to wait."""

    def settle(self, reservation: Reservation, tokens: int) -> None:
        """Replaces the estimated input tokens with what Google counted."""

    def cancel(self, reservation: Reservation) -> None:
        """Gives the room back: Google never counted the attempt."""
