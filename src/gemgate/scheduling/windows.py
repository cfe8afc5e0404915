"""Sliding windows that admit a request only when Google's own window will have room for it.

Entries are stamped when the gateway admits a request, a moment before Google stamps its arrival;
an entry therefore counts for `length + margin`, so the gateway's window never empties earlier
than Google's.
"""

from __future__ import annotations

from collections import deque


class Entry:
    """One admitted request in a window; its amount is corrected once real usage is known."""

    __slots__ = ("amount", "at", "live")

    def __init__(self, at: float, amount: int) -> None:
        self.at, self.amount, self.live = at, amount, True


class SlidingWindow:
    def __init__(self, length: float, margin: float) -> None:
        self.span = length + margin
        self._entries: deque[Entry] = deque()
        self.total = 0

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries and (entries[0].at <= now - self.span or not entries[0].live):
            entry = entries.popleft()
            if entry.live:
                self.total -= entry.amount
                entry.live = False

    def wait(self, now: float, amount: int, limit: int) -> float:
        """0 when `amount` fits now, else seconds until enough of the window has passed."""
        self._expire(now)
        excess = self.total + amount - limit
        if excess <= 0:
            return 0.0
        if amount > limit:  # can never fit: it would need the whole window to itself
            return self.span
        for entry in self._entries:
            if entry.live:
                excess -= entry.amount
                if excess <= 0:
                    return entry.at + self.span - now
        return self.span

    def add(self, now: float, amount: int) -> Entry:
        entry = Entry(now, amount)
        self._entries.append(entry)
        self.total += amount
        return entry

    def adjust(self, entry: Entry, amount: int) -> None:
        if entry.live:
            self.total += amount - entry.amount
            entry.amount = amount

    def remove(self, entry: Entry) -> None:
        """For requests Google never counted (refused with 429, or never reached it)."""
        if entry.live:
            self.total -= entry.amount
            entry.live = False
