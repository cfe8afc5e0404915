"""Sliding windows that admit a request only when Google's own window will have room for it.

A window counts in time buckets (1/60 of its length), so its memory does not grow with traffic.
A bucket counts until its *end* is older than the window, and the window is `margin` longer than
Google's: entries are stamped when the gateway admits a request, a moment before Google stamps
its arrival. Both errors are on the safe side: the gateway's window never empties earlier than
Google's, at the price of leaving at most one bucket's worth of room unused.
"""

from __future__ import annotations

from collections import deque

_BUCKETS = 60


class Bucket:
    __slots__ = ("amount", "live", "start")

    def __init__(self, start: float) -> None:
        self.start, self.amount, self.live = start, 0, True


class SlidingWindow:
    def __init__(self, length: float, margin: float) -> None:
        self.span = length + margin
        # An endless window (a Pacific day, replaced at midnight) is one bucket: a counter.
        self.width = length / _BUCKETS if length != float("inf") else float("inf")
        self._buckets: deque[Bucket] = deque()
        self.total = 0

    def _expire(self, now: float) -> None:
        buckets = self._buckets
        while buckets and buckets[0].start + self.width <= now - self.span:
            bucket = buckets.popleft()
            bucket.live = False
            self.total -= bucket.amount

    def wait(self, now: float, amount: int, limit: int) -> float:
        """0 when `amount` fits now, else seconds until enough of the window has passed."""
        self._expire(now)
        excess = self.total + amount - limit
        if excess <= 0:
            return 0.0
        if amount > limit:  # can never fit: it would need the whole window to itself
            return self.span
        for bucket in self._buckets:
            excess -= bucket.amount
            if excess <= 0:
                return bucket.start + self.width + self.span - now
        return self.span

    def add(self, now: float, amount: int) -> Bucket:
        self._expire(now)
        last = self._buckets[-1] if self._buckets else None
        if last is None or now >= last.start + self.width:
            start = now if self.width == float("inf") else now - now % self.width
            last = Bucket(start)
            self._buckets.append(last)
        last.amount += amount
        self.total += amount
        return last

    def adjust(self, bucket: Bucket, was: int, now_is: int) -> None:
        """Corrects an amount already counted (real usage replacing an estimate)."""
        if bucket.live:
            bucket.amount += now_is - was
            self.total += now_is - was

    def remove(self, bucket: Bucket, amount: int) -> None:
        """For requests Google never counted (refused with 429, or never reached it)."""
        self.adjust(bucket, amount, 0)
