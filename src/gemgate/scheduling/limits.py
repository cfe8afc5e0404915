"""Google's rate limits per project and model: built-in defaults per tier, config overrides, and
corrections learnt from the QuotaFailure of a real 429.

Google no longer publishes fixed tables; it shows each project's active limits in AI Studio
(https://aistudio.google.com → your project → Rate limits). The defaults below are the last
published values (ai.google.dev/gemini-api/docs/rate-limits, mid-2025, tiers 2 and 3 as printed
then); free-tier numbers were reported cut by 50–80% in December 2025, so set your own in
`projects[].limits` when you know them. A 429 naming a limit corrects it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gemgate.core.events import LimitLearnt
from gemgate.state import Limits

_K, _M = 1_000, 1_000_000
# tier → model family → (RPM, TPM, RPD); None where the table printed no limit.
_TABLE: dict[str, dict[str, tuple[int | None, int | None, int | None]]] = {
    "free": {
        "gemini-2.5-pro": (5, 250 * _K, 100),
        "gemini-2.5-flash-lite": (15, 250 * _K, 1000),
        "gemini-2.5-flash": (10, 250 * _K, 250),
        "gemini-2.0-flash-lite": (30, 1 * _M, 200),
        "gemini-2.0-flash": (15, 1 * _M, 200),
        "embedding": (100, 30 * _K, 1000),
        "*": (5, 250 * _K, 100),
    },
    "tier1": {
        "gemini-2.5-pro": (150, 2 * _M, 10 * _K),
        "gemini-2.5-flash-lite": (4000, 4 * _M, None),
        "gemini-2.5-flash": (1000, 1 * _M, 10 * _K),
        "gemini-2.0-flash-lite": (4000, 4 * _M, None),
        "gemini-2.0-flash": (2000, 4 * _M, None),
        "embedding": (3000, 1 * _M, None),
        "*": (150, 1 * _M, 10 * _K),
    },
    "tier2": {
        "gemini-2.5-pro": (1000, 5 * _M, 50 * _K),
        "gemini-2.5-flash-lite": (10 * _K, 10 * _M, None),
        "gemini-2.5-flash": (2000, 3 * _M, 100 * _K),
        "gemini-2.0-flash-lite": (20 * _K, 10 * _M, None),
        "gemini-2.0-flash": (10 * _K, 10 * _M, None),
        "embedding": (5000, 5 * _M, None),
        "*": (1000, 3 * _M, 50 * _K),
    },
    "tier3": {
        "gemini-2.5-pro": (2000, 8 * _M, None),
        "gemini-2.5-flash-lite": (30 * _K, 30 * _M, None),
        "gemini-2.5-flash": (10 * _K, 8 * _M, None),
        "gemini-2.0-flash-lite": (30 * _K, 30 * _M, None),
        "gemini-2.0-flash": (30 * _K, 30 * _M, None),
        "embedding": (10 * _K, 10 * _M, None),
        "*": (2000, 8 * _M, None),
    },
}


_FAMILIES = sorted((f for f in _TABLE["free"] if f != "*"), key=len, reverse=True)


def _family(model: str) -> str:
    """The table row for a model id: exact family by longest prefix, embeddings together."""
    if "embedding" in model:
        return "embedding"
    return next((family for family in _FAMILIES if model.startswith(family)), "*")


def builtin(tier: str, model: str) -> Limits:
    row = _TABLE.get(tier, _TABLE["free"])
    rpm, tpm, rpd = row.get(_family(model), row["*"])
    return Limits(rpm, tpm, rpd)


# Concurrent Live API sessions per project, by tier: the rate-limit page's Live API rows as
# printed mid-2025 (free 3, tier 1 50, tiers 2 and 3 1,000). `projects[].live_sessions` wins.
_LIVE_SESSIONS = {"free": 3, "tier1": 50, "tier2": 1000, "tier3": 1000}


def live_sessions(tier: str) -> int:
    return _LIVE_SESSIONS.get(tier, _LIVE_SESSIONS["free"])


class LimitBook:
    """The limits in force for each (project, model): config over built-in, corrected by 429s."""

    def __init__(self, tiers: dict[str, str],
                 overrides: dict[str, dict[str, dict[str, int | None]]]) -> None:
        self._tiers = tiers
        self._overrides = overrides
        self._learnt: dict[tuple[str, str], Limits] = {}
        self._known: dict[tuple[str, str], Limits] = {}  # asked on every admission: kept
        # Told of every limit learnt (Events, and the other replicas).
        self.on_learn: Callable[[LimitLearnt], None] = lambda learnt: None

    def add_project(self, project: str, tier: str) -> None:
        """A project added while running (upstream/keyring.py): its tier's limits from now."""
        if project not in self._tiers:
            self._tiers[project] = tier
            self._known = {k: v for k, v in self._known.items() if k[0] != project}

    def of(self, project: str, model: str) -> Limits:
        known = self._known.get((project, model))
        if known is None:
            known = self._known[(project, model)] = self._resolve(project, model)
        return known

    def _resolve(self, project: str, model: str) -> Limits:
        learnt = self._learnt.get((project, model))
        if learnt is not None:
            return learnt
        limits = builtin(self._tiers.get(project, "free"), model)
        configured = self._overrides.get(project, {})
        for source in (configured.get("*"), configured.get(model)):
            if source:
                limits = replace(limits, **{k: v for k, v in source.items() if k in
                                            ("rpm", "tpm", "rpd")})
        return limits

    def learn(self, project: str, model: str, violation: dict[str, Any]) -> Limits | None:
        """Takes the limit a QuotaFailure violation names as the truth for this project."""
        quota_id = str(violation.get("quotaId", ""))
        try:
            value = int(str(violation.get("quotaValue", "")))
        except ValueError:
            return None
        if value <= 0:
            return None
        model = str((violation.get("quotaDimensions") or {}).get("model") or model)
        if "PerDay" in quota_id:
            field = "rpd"
        elif "Token" in quota_id:
            field = "tpm"
        elif "PerMinute" in quota_id:
            field = "rpm"
        else:
            return None
        limits = replace(self.of(project, model), **{field: value})
        self.adopt(project, model, limits)
        self.on_learn(LimitLearnt(project, model, limits.rpm, limits.tpm, limits.rpd))
        return limits

    def adopt(self, project: str, model: str, limits: Limits) -> None:
        """A limit learnt here or by another replica: the truth for this project and model."""
        self._learnt[(project, model)] = self._known[(project, model)] = limits
