"""Outlier detection: a key (or project) that keeps failing with 5xx is set aside for a while.

Modelled on Envoy's consecutive-5xx ejection. After `consecutive_failures` server errors or
connection failures in a row, the key is ejected for `base_ejection_s`, doubled for each
ejection in a row and capped at `max_ejection_s`; the multiplier decays by one for every
`base_ejection_s` the key then stays healthy. When an ejection ends the key is *probing*: it
takes one request at a time, and a single failure sends it back with the longer ejection,
while a success clears it. At most `max_ejected_share` of the keys (and of the projects) are
set aside at once, one at least (Envoy's max_ejection_percent), and an ejected key is still used
when nothing else is left: ejecting everything would turn a slow pool into a dead one.

This is neither the quota cooldown (a 429 cools a project for one model until Google's
RetryInfo says) nor disabling (a key Google refuses is out until the prober sees it work):
an always-503 key among good ones would otherwise take its share of traffic and make every
request it touches wait for a retry (measured: p99 51 ms → 204 ms, throughput halved).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gemgate.config import OutlierConfig

State = Literal["healthy", "ejected", "probing"]


@dataclass(slots=True)
class Outlier:
    consecutive: int = 0  # server failures in a row
    ejections: int = 0  # the back-off multiplier
    ejected_until: float = 0.0
    probing: bool = False  # back from an ejection, on trial

    def state(self, now: float) -> State:
        if now < self.ejected_until:
            return "ejected"
        return "probing" if self.probing else "healthy"

    def view(self, now: float) -> dict[str, Any]:
        return {"state": self.state(now), "ejected_for_s": round(max(0.0, self.ejected_until
                                                                     - now), 3),
                "ejections": self.ejections, "consecutive_failures": self.consecutive}


class OutlierPolicy:
    def __init__(self, config: OutlierConfig) -> None:
        self.threshold = config.consecutive_failures
        self.base_s, self.max_s = config.base_ejection_s, config.max_ejection_s
        self.max_share = config.max_ejected_share

    def failed(self, outlier: Outlier, now: float, may_eject: bool = True) -> bool:
        """Counts a server failure; True when it ejects. `may_eject` is False while the most
        that may be set aside at once already are (when everything fails alike — Google's
        own 503 storm — nothing is an outlier, and ejecting all would only shuffle load)."""
        outlier.consecutive += 1
        if not may_eject or (not outlier.probing and outlier.consecutive < self.threshold):
            return False
        if not outlier.probing and outlier.ejections and outlier.ejected_until:
            healthy_for = now - outlier.ejected_until
            outlier.ejections = max(0, outlier.ejections - int(healthy_for // self.base_s))
        outlier.ejections += 1
        outlier.ejected_until = now + min(self.max_s,
                                          self.base_s * 2 ** (outlier.ejections - 1))
        outlier.consecutive, outlier.probing = 0, True
        return True

    @staticmethod
    def answered(outlier: Outlier, now: float) -> None:
        """Any answer that is not a server failure (a 400 is the client's, not the key's)."""
        outlier.consecutive = 0
        if outlier.probing and now >= outlier.ejected_until:
            outlier.probing = False
