"""The Overview's live figures — requests per second, error rate by problem, latency p50/p95,
time to first byte — over the last minute of this process's finished requests.

Each finished request appends one tuple to a bounded deque (a listener on `Finished`: about
0.2 µs, nothing else on the request's way); the figures are computed when asked (the console
polls every few seconds) and kept for a second, so any number of open consoles costs one
computation a second. With several workers or replicas each has its own window: the page says
whose figures they are."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from gemgate.core.call import Call
from gemgate.core.events import Events, Finished, LiveReport

WINDOW_S = 60.0
_CAPACITY = 200_000  # a minute at over 3,000 requests/s; beyond it the oldest go first


class LiveFigures:
    def __init__(self, events: Events, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: deque[tuple[float, int, str | None, float, float | None]] = deque(
            maxlen=_CAPACITY)
        self._kept: tuple[float, dict[str, Any]] | None = None
        self.started = clock()
        self.whose = f"{socket.gethostname()}/{os.getpid()}"
        self.live_sessions = 0  # Live sessions open in this process
        events.subscribe(self._on_finished, (Finished,))
        events.subscribe(self._on_live, (LiveReport,))

    def _on_finished(self, call: Call | None, event: Any) -> None:
        if call is not None and isinstance(event, Finished) and not event.cancelled:
            self._seen.append((self.clock(), event.status, event.problem, call.elapsed_ms(),
                               call.first_byte_ms))

    def _on_live(self, call: Call | None, event: Any) -> None:
        if isinstance(event, LiveReport) and event.state != "progress":
            self.live_sessions += 1 if event.state == "opened" else -1

    def figures(self) -> dict[str, Any]:
        now = self.clock()
        if self._kept is not None and now - self._kept[0] < 1.0:
            return self._kept[1]
        seen = self._seen
        while seen and seen[0][0] < now - WINDOW_S:
            seen.popleft()
        span = min(WINDOW_S, max(1.0, now - self.started))
        latencies = sorted(s[3] for s in seen)
        first_bytes = sorted(s[4] for s in seen if s[4] is not None)
        failed = [s for s in seen if s[1] >= 400]
        problems = Counter(str(s[2] or s[1]) for s in failed)
        figures = {
            "whose": self.whose, "live_sessions": self.live_sessions,
            "window_s": round(span, 1), "requests": len(seen),
            "requests_per_s": round(len(seen) / span, 2),
            "error_rate": round(len(failed) / len(seen), 4) if seen else 0.0,
            "error_percent": round(100 * len(failed) / len(seen), 2) if seen else 0.0,
            "errors_by_problem": dict(problems.most_common(10)),
            "latency_ms": {"p50": _quantile(latencies, 0.5), "p95": _quantile(latencies, 0.95)},
            "ttfb_ms": {"p50": _quantile(first_bytes, 0.5),
                        "p95": _quantile(first_bytes, 0.95)}}
        self._kept = (now, figures)
        return figures


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)
