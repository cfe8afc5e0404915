"""What happened to a request, told once, in one place.

Every stage reports here: entering a stage, waiting in a quota queue, each upstream attempt,
falling back to another model, a key or project changing state, and the request finishing
with its status, tokens and cost. Subscribers read the events they care about: the access log
and the ledger today; metrics and the console next. A subscriber never changes the request;
the ledger's is awaited (a request's record is durable before its last byte), the rest are
called in line and must be quick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemgate.problems import ProblemId

if TYPE_CHECKING:
    from gemgate.core.call import Call

log = logging.getLogger("gemgate.events")


@dataclass(frozen=True, slots=True)
class StageEntered:
    stage: str  # auth, read, decode, route, rights, owners, relay


@dataclass(frozen=True, slots=True)
class QueueWaited:
    model: str
    priority: str
    waited_ms: float


@dataclass(frozen=True, slots=True)
class AttemptMade:
    project: str
    key: str  # masked
    status: int  # 0 when no HTTP answer came
    problem: ProblemId | None
    upstream_ms: float
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class FellBack:
    from_model: str
    to_model: str
    because: ProblemId | None


@dataclass(frozen=True, slots=True)
class PoolChanged:
    """A key or project taken out of use, set aside, cooling, or back. Replicas share these
    (state/health.py): `key_id` (a digest prefix, the same on every replica, useless to anyone
    else) finds the key; `seconds` is how long cooling or an ejection lasts from now."""

    project: str
    key: str | None  # masked; None when the whole project changed
    state: str  # disabled, enabled, ejected, cooling
    reason: str
    problem: ProblemId | None
    key_id: str | None = None
    seconds: float = 0.0
    model: str = "*"  # what cools (quotas are per model)


@dataclass(frozen=True, slots=True)
class ProviderRested:
    """A provider's key resting (rate-limited or refused), shared like a pool change."""

    provider: str
    key_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class LimitLearnt:
    """A project's limit for a model, as Google's 429 named it (QuotaFailure)."""

    project: str
    model: str
    rpm: int | None
    tpm: int | None
    rpd: int | None


@dataclass(frozen=True, slots=True)
class Finished:
    status: int
    problem: ProblemId | None
    usage: dict[str, Any] | None
    cancelled: bool = False  # the client left a stream before its end


@dataclass(frozen=True, slots=True)
class LiveReport:
    """A Live session opened, went on (every `live.check_every_s`: the frames since the last
    report), or closed (`ended`: the problem that ended it, or who closed it)."""

    state: str  # opened, progress, closed
    model: str
    project: str
    frames_up: int = 0  # client → Google
    frames_down: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    ended: str = ""


Event = (StageEntered | QueueWaited | AttemptMade | FellBack | PoolChanged | ProviderRested
         | LimitLearnt | Finished | LiveReport)
EVENT_KINDS: tuple[type, ...] = (StageEntered, QueueWaited, AttemptMade, FellBack, PoolChanged,
                                 ProviderRested, LimitLearnt, Finished, LiveReport)
# What replicas tell each other (state/health.py).
Shared = PoolChanged | ProviderRested | LimitLearnt
Listener = Callable[["Call | None", Event], None]
# Called for each Finished event; what it returns (the ledger's commit) is awaited before the
# answer's last byte, except for a cancelled request, whose client is gone.
Recorder = Callable[["Call", Finished], Awaitable[None] | None]


class Events:
    """Listeners subscribe to the kinds of event they read: an event nobody reads costs one
    dictionary lookup (`wants`), not an object and a call per listener — the stages report
    seven times per request, on the hot path."""

    def __init__(self) -> None:
        self._listeners: dict[type, list[Listener]] = {}
        self._recorders: list[Recorder] = []
        self._pending: set[asyncio.Future[None]] = set()  # abandoned requests' records

    def subscribe(self, listener: Listener, kinds: tuple[type, ...] | None = None) -> None:
        """Called with every event of `kinds` (all when None), in line: quick, never raising."""
        for kind in kinds or EVENT_KINDS:
            self._listeners.setdefault(kind, []).append(listener)

    def wants(self, kind: type) -> bool:
        return kind in self._listeners

    def record_with(self, recorder: Recorder) -> None:
        """Awaited for each Finished event, before the answer's last byte (the ledger)."""
        self._recorders.append(recorder)

    def emit(self, call: Call | None, event: Event) -> None:
        for listener in self._listeners.get(type(event), ()):
            try:
                listener(call, event)
            except Exception:  # a listener's bug must not fail the request
                log.exception("event listener failed on %s", type(event).__name__)

    async def finished(self, call: Call, event: Finished) -> None:
        """The request is over: every listener told, every recorder's work awaited."""
        self.emit(call, event)
        for recorder in self._recorders:
            pending = recorder(call, event)
            if pending is not None:
                await pending

    def abandoned(self, call: Call, event: Finished) -> None:
        """The client left mid-answer: told and recorded, nothing awaited (the handler may be
        being cancelled)."""
        self.emit(call, event)
        for recorder in self._recorders:
            pending = recorder(call, event)
            if pending is not None:
                task = asyncio.ensure_future(pending)
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
