"""Rate state for one process, in memory."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from gemgate.scheduling.limits import Limits
from gemgate.scheduling.windows import SlidingWindow
from gemgate.state import Reservation

_PACIFIC = ZoneInfo("America/Los_Angeles")


class MemoryRateState:
    def __init__(self, minute_s: float = 60.0, margin_s: float = 0.5,
                 day_s: float | None = None) -> None:
        self.minute_s, self.margin_s, self.day_s = minute_s, margin_s, day_s
        self._windows: dict[tuple[str, str, str], SlidingWindow] = {}

    def _window(self, project: str, model: str, kind: str, length: float) -> SlidingWindow:
        key = (project, model, kind)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow(length, self.margin_s)
        return window

    def _day(self) -> tuple[str, float, float]:
        """The day window's name and length, and for Google's real day the seconds left in it
        (requests per day reset at midnight Pacific time)."""
        if self.day_s is not None:
            return "rpd", self.day_s, 0.0
        now = datetime.now(_PACIFIC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return f"rpd:{now.date()}", float("inf"), (midnight - now).total_seconds()

    def try_reserve(self, project: str, model: str, tokens: int,
                    limits: Limits) -> tuple[Reservation | None, float]:
        now = time.monotonic()
        checks: list[tuple[str, int, int, float]] = []
        if limits.rpm:
            checks.append(("rpm", limits.rpm, 1, self.minute_s))
        if limits.tpm:
            checks.append(("tpm", limits.tpm, tokens, self.minute_s))
        if limits.rpd:
            day, length, left = self._day()
            checks.append((day, limits.rpd, 1, length))
        longest = 0.0
        for kind, limit, amount, length in checks:
            wait = self._window(project, model, kind, length).wait(now, amount, limit)
            if wait > 0 and kind.startswith("rpd") and self.day_s is None:
                wait = left
            longest = max(longest, wait)
        if longest > 0:
            return None, longest
        reservation = Reservation(project, model, tokens)
        for kind, _, amount, length in checks:
            window = self._window(project, model, kind, length)
            reservation.handles.append((kind, window, window.add(now, amount)))
        return reservation, 0.0

    def settle(self, reservation: Reservation, tokens: int) -> None:
        for kind, window, entry in reservation.handles:
            if kind == "tpm":
                window.adjust(entry, tokens)

    def cancel(self, reservation: Reservation) -> None:
        for _, window, entry in reservation.handles:
            window.remove(entry)
        reservation.handles.clear()
