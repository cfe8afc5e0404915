"""Rate state for one process, in memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gemgate.state import Limits, Reservation, Scope, ScopeFull
from gemgate.state.windows import SlidingWindow

_PACIFIC = ZoneInfo("America/Los_Angeles")


class _Windows:
    """The three windows of one project and model, found with one lookup per admission."""

    __slots__ = ("day", "day_name", "minute_requests", "minute_tokens")

    def __init__(self, minute_s: float, margin_s: float) -> None:
        self.minute_requests = SlidingWindow(minute_s, margin_s)
        self.minute_tokens = SlidingWindow(minute_s, margin_s)
        self.day: SlidingWindow | None = None
        self.day_name = ""


class MemoryRateState:
    def __init__(self, minute_s: float = 60.0, margin_s: float = 0.5,
                 day_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.minute_s, self.margin_s, self.day_s = minute_s, margin_s, day_s
        self.clock = clock  # monotonic seconds (tests pass a fake one)
        self._books: dict[tuple[str, str], _Windows] = {}
        self._scopes: dict[str, tuple[SlidingWindow, SlidingWindow]] = {}  # requests, tokens
        self._day_name, self._midnight = "", 0.0  # the Pacific day, and when it ends (monotonic)

    def _today(self, now: float) -> tuple[str, float]:
        """The day's name and the seconds left in it. Google's requests-per-day reset at
        midnight Pacific; with `day_s` set (tests), a day is a sliding window of that length."""
        if self.day_s is not None:
            return "day", 0.0
        if now >= self._midnight:  # time zones are slow to compute: once a day is enough
            local = datetime.now(_PACIFIC)
            midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
            self._day_name = str(local.date())
            self._midnight = now + (midnight - local).total_seconds()
        return self._day_name, self._midnight - now

    def _day_window(self, book: _Windows, now: float) -> tuple[SlidingWindow, float]:
        name, left = self._today(now)
        if book.day is None or book.day_name != name:  # a new day starts empty
            length = self.day_s if self.day_s is not None else float("inf")
            book.day, book.day_name = SlidingWindow(length, self.margin_s), name
        return book.day, left

    async def reserve(self, model: str, tokens: int, candidates: Iterable[tuple[str, Limits]],
                      scopes: tuple[Scope, ...] = ()) -> tuple[Reservation | None, float]:
        now = self.clock()
        for scope in scopes:
            requests, counted = self._scope_windows(scope)
            wait = requests.wait(now, 1, scope.rpm) if scope.rpm else 0.0
            if scope.tpm:
                wait = max(wait, counted.wait(now, tokens, scope.tpm))
            if wait > 0:
                raise ScopeFull(scope, wait)
        soonest = float("inf")
        for project, limits in candidates:
            reservation, wait = self.try_reserve(project, model, tokens, limits)
            if reservation is not None:
                for scope in scopes:  # nothing awaited since the check: still room
                    requests, counted = self._scope_windows(scope)
                    if scope.rpm:
                        reservation.handles.append((requests, requests.add(now, 1), 1, False))
                    if scope.tpm:
                        reservation.handles.append((counted, counted.add(now, tokens), tokens,
                                                    True))
                return reservation, 0.0
            soonest = min(soonest, wait)
        return None, soonest

    def _scope_windows(self, scope: Scope) -> tuple[SlidingWindow, SlidingWindow]:
        found = self._scopes.get(scope.name)
        if found is None:
            found = self._scopes[scope.name] = (SlidingWindow(60.0, 0.0), SlidingWindow(60.0, 0.0))
        return found

    def try_reserve(self, project: str, model: str, tokens: int,
                    limits: Limits) -> tuple[Reservation | None, float]:
        """One project's windows (the memory backend decides project by project)."""
        book = self._books.get((project, model))
        if book is None:
            book = self._books[(project, model)] = _Windows(self.minute_s, self.margin_s)
        now = self.clock()
        wait = 0.0
        if limits.rpm:
            wait = book.minute_requests.wait(now, 1, limits.rpm)
        if limits.tpm:
            wait = max(wait, book.minute_tokens.wait(now, tokens, limits.tpm))
        day: SlidingWindow | None = None
        if limits.rpd:
            day, left = self._day_window(book, now)
            day_wait = day.wait(now, 1, limits.rpd)
            if day_wait > 0:
                wait = max(wait, left if self.day_s is None else day_wait)
        if wait > 0:
            return None, wait
        reservation = Reservation(project, model, tokens)
        handles = reservation.handles  # (window, bucket, amount counted, counts tokens)
        if limits.rpm:
            handles.append((book.minute_requests, book.minute_requests.add(now, 1), 1, False))
        if limits.tpm:
            handles.append((book.minute_tokens, book.minute_tokens.add(now, tokens), tokens,
                            True))
        if day is not None:
            handles.append((day, day.add(now, 1), 1, False))
        return reservation, 0.0

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        for index, (window, bucket, counted, counts_tokens) in enumerate(reservation.handles):
            if counts_tokens:
                window.adjust(bucket, counted, tokens)
                reservation.handles[index] = (window, bucket, tokens, True)

    def in_use(self) -> dict[tuple[str, str, str], int]:
        """What each project's windows hold now, by (project, model, rpm | tpm | rpd): for
        metrics, read at scrape time."""
        now, found = self.clock(), {}
        for (project, model), book in self._books.items():
            for window, counted in (("rpm", book.minute_requests),
                                    ("tpm", book.minute_tokens), ("rpd", book.day)):
                if counted is not None:
                    counted.wait(now, 0, 1 << 62)  # drops what has left the window
                    found[(project, model, window)] = counted.total
        return found

    async def waiting(self, model: str, change: int) -> None:
        return None  # one process: its own scheduler already knows

    async def cancel(self, reservation: Reservation) -> None:
        for window, bucket, counted, _ in reservation.handles:
            window.remove(bucket, counted)
        reservation.handles.clear()
