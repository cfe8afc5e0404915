"""Per-project, per-model quotas, enforced as Google does: requests per minute, input tokens per
minute, requests per day (reset at midnight Pacific). Keys of one project share one budget.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gemgate.google_errors import TYPE_PREFIX, help_links, retry_info
from gemgate.simulator.config import QuotaLimits, SimConfig, SimProject

_PACIFIC = ZoneInfo("America/Los_Angeles")
_RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)


@dataclass
class Exhausted:
    """Which limit ran out and when there will be room again."""

    quota_id: str
    metric: str
    limit: int
    retry_after: float
    model: str

    def details(self) -> list[dict[str, Any]]:
        violation = {
            "quotaMetric": self.metric,
            "quotaId": self.quota_id,
            "quotaDimensions": {"location": "global", "model": self.model},
            "quotaValue": str(self.limit),
        }
        return [
            {"@type": TYPE_PREFIX + "QuotaFailure", "violations": [violation]},
            help_links(("Learn more about Gemini API quotas", _RATE_LIMITS_URL)),
            retry_info(self.retry_after),
        ]


@dataclass
class _Window:
    """A sliding log of (time, amount) inside the last `length` seconds."""

    length: float
    events: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def _expire(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - self.length:
            self.total -= self.events.popleft()[1]

    def room_after(self, now: float, amount: int, limit: int) -> float:
        """0 when `amount` fits now, else seconds until enough of the log has expired."""
        self._expire(now)
        if self.total + amount <= limit:
            return 0.0
        if amount > limit:
            return min(self.length, 86_400.0)  # can never fit; "a whole window", as Google says
        needed, freed = self.total + amount - limit, 0
        for stamp, used in self.events:
            freed += used
            if freed >= needed:
                return stamp + self.length - now
        return min(self.length, 86_400.0)

    def add(self, now: float, amount: int) -> None:
        self.events.append((now, amount))
        self.total += amount


def _names(tier: str, embed: bool) -> dict[str, tuple[str, str]]:
    suffix = "-FreeTier" if tier == "free" else ""
    metric_tier = "free_tier" if tier == "free" else "paid_tier"
    family, verb = ("EmbedContent", "embed") if embed else ("GenerateContent", "generate")
    requests = "EmbedContent" if embed else "Generate"
    metric = f"generativelanguage.googleapis.com/{verb}_content_{metric_tier}"
    return {
        "rpm": (f"{requests}RequestsPerMinutePerProjectPerModel{suffix}", f"{metric}_requests"),
        "tpm": (f"{family}InputTokensPerModelPerMinute{suffix}", f"{metric}_input_token_count"),
        "rpd": (f"{requests}RequestsPerDayPerProjectPerModel{suffix}", f"{metric}_requests"),
    }


class QuotaBook:
    """All projects' windows. Only requests that are admitted are counted, as at Google."""

    def __init__(self, config: SimConfig, clock: Any = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._windows: dict[tuple[str, str, str], _Window] = {}

    def reset(self) -> None:
        self._windows.clear()

    def _limits(self, project: SimProject, model: str) -> QuotaLimits | None:
        return project.quotas.get(model) or project.quotas.get("*")

    def _day(self) -> tuple[str, float, float]:
        """The day's window name, its length, and (for Google's real day) seconds to midnight."""
        if self._config.day_seconds is not None:
            return "rpd", self._config.day_seconds, 0.0
        now = datetime.now(_PACIFIC)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return f"rpd:{now.date()}", float("inf"), (midnight - now).total_seconds()

    def _window(self, project: str, model: str, kind: str, length: float) -> _Window:
        key = (project, model, kind)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(length)
        return window

    def admit(self, project: SimProject, model: str, tokens: int, embed: bool) -> Exhausted | None:
        """Counts the request if every limit has room; otherwise names the first that does not."""
        limits = self._limits(project, model)
        if limits is None:
            return None
        now = self._clock()
        minute = self._config.minute_seconds
        day_name, day_length, until_midnight = self._day()
        checks = [("rpm", limits.rpm, 1, minute), ("tpm", limits.tpm, tokens, minute),
                  (day_name, limits.rpd, 1, day_length)]
        names = _names(project.tier, embed)
        for kind, limit, amount, length in checks:
            if limit is None:
                continue
            wait = self._window(project.name, model, kind, length).room_after(now, amount, limit)
            if wait > 0:
                if kind == day_name and until_midnight:
                    wait = until_midnight  # the real day ends at midnight Pacific
                quota_id, metric = names[kind[:3]]
                return Exhausted(quota_id, metric, limit, wait, model)
        for kind, limit, amount, length in checks:
            if limit is not None:
                self._window(project.name, model, kind, length).add(now, amount)
        return None
