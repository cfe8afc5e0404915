"""The pool of upstream keys, grouped by Google Cloud project, with each one's health.

A key is active or disabled (with a reason and a time); a project may be cooling until a time
(Google's RetryInfo) or disabled as a whole (API not enabled, region refused). Selection spreads
load: the least busy, least recently used project first, then its least busy, least recently
used key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gemgate.config import ProjectConfig
from gemgate.secrets import mask_key
from gemgate.upstream.classify import Verdict


@dataclass(slots=True, eq=False)
class KeyState:
    secret: str
    project: ProjectState
    masked: str = ""
    disabled_reason: str | None = None
    disabled_problem: str | None = None
    disabled_at: float | None = None  # wall-clock time, for people
    in_flight: int = 0
    last_used: float = 0.0
    successes: int = 0
    failures: int = 0

    @property
    def active(self) -> bool:
        return self.disabled_reason is None and self.project.disabled_reason is None

    def view(self) -> dict[str, Any]:
        return {"key": self.masked, "state": "active" if self.disabled_reason is None
                else "disabled", "reason": self.disabled_reason,
                "problem": self.disabled_problem, "disabled_at": self.disabled_at,
                "in_flight": self.in_flight, "successes": self.successes,
                "failures": self.failures}


@dataclass(slots=True, eq=False)
class ProjectState:
    name: str
    tier: str
    proxy: str | None
    keys: list[KeyState] = field(default_factory=list)
    # Monotonic time until which a model (or "*", every model) is cooling after a 429: Google's
    # quotas are per project and model.
    cooling: dict[str, float] = field(default_factory=dict)
    cooling_reason: str | None = None
    disabled_reason: str | None = None
    disabled_problem: str | None = None
    disabled_at: float | None = None
    in_flight: int = 0
    last_used: float = 0.0

    def cooling_until(self, model: str = "") -> float:
        whole = self.cooling.get("*", 0.0)
        return max(whole, self.cooling.get(model, 0.0)) if model else whole

    def is_cooling(self, model: str, now: float) -> bool:
        return self.cooling_until(model) > now

    def usable(self) -> bool:
        return self.disabled_reason is None and any(k.disabled_reason is None for k in self.keys)

    def view(self, now: float) -> dict[str, Any]:
        cooling = {m: round(t - now, 3) for m, t in self.cooling.items() if t > now}
        state = "disabled" if self.disabled_reason else "cooling" if cooling else "active"
        return {"project": self.name, "tier": self.tier, "state": state,
                "cooling_for_s": max(cooling.values(), default=0.0), "cooling": cooling,
                "cooling_reason": self.cooling_reason, "reason": self.disabled_reason,
                "problem": self.disabled_problem, "in_flight": self.in_flight,
                "proxy": "configured" if self.proxy else None,
                "keys": [k.view() for k in self.keys]}


@dataclass(slots=True)
class Lease:
    """One key lent to one attempt; return it with `KeyPool.release`."""

    key: KeyState

    @property
    def project(self) -> ProjectState:
        return self.key.project


class KeyPool:
    def __init__(self, projects: list[ProjectConfig], default_cooldown_s: float = 60.0) -> None:
        self.default_cooldown_s = default_cooldown_s
        self.projects: list[ProjectState] = []
        for config in projects:
            project = ProjectState(config.name, config.tier, config.proxy)
            project.keys = [KeyState(k, project, mask_key(k)) for k in config.keys]
            self.projects.append(project)
        self._by_name = {p.name: p for p in self.projects}

    def project(self, name: str) -> ProjectState | None:
        return self._by_name.get(name)

    def usable(self) -> list[ProjectState]:
        return [p for p in self.projects if p.usable()]

    def acquire(self, avoid: set[str] | None = None, only: str | None = None,
                model: str = "") -> Lease | None:
        """The best key now: healthy, in a project not cooling for `model` and not in `avoid`."""
        now = time.monotonic()
        best: KeyState | None = None
        best_rank: tuple[int, float, int, float] = (0, 0.0, 0, 0.0)
        for project in self.projects:
            if (project.disabled_reason or project.is_cooling(model, now)
                    or (avoid and project.name in avoid)
                    or (only is not None and project.name != only)):
                continue
            for key in project.keys:
                if key.disabled_reason is not None:
                    continue
                # Quota is per project: spread over projects first, then over their keys.
                rank = (project.in_flight, project.last_used, key.in_flight, key.last_used)
                if best is None or rank < best_rank:
                    best, best_rank = key, rank
        if best is None:
            return None
        best.in_flight += 1
        best.project.in_flight += 1
        best.last_used = best.project.last_used = now
        return Lease(best)

    def release(self, lease: Lease, verdict: Verdict, model: str = "") -> None:
        """Returns the key and acts on what its attempt revealed. A 429 cools the project for
        the model that was asked for (quotas are per model), or for every model when unknown."""
        key, project = lease.key, lease.project
        key.in_flight -= 1
        project.in_flight -= 1
        if verdict.ok:
            key.successes += 1
            return
        key.failures += 1
        if verdict.action == "cool_project":
            self.cool(project, verdict.cooldown_s or self.default_cooldown_s, verdict.reason,
                      model or verdict.quota_model or "*")
        elif verdict.action == "disable_key":
            key.disabled_reason, key.disabled_problem = verdict.reason, verdict.problem
            key.disabled_at = time.time()
        elif verdict.action == "disable_project":
            project.disabled_reason, project.disabled_problem = verdict.reason, verdict.problem
            project.disabled_at = time.time()

    def cool(self, project: ProjectState, seconds: float, reason: str,
             model: str = "*") -> None:
        until = time.monotonic() + seconds
        if until > project.cooling.get(model, 0.0):
            project.cooling[model] = until
            project.cooling_reason = reason

    def enable(self, key: KeyState) -> None:
        key.disabled_reason = key.disabled_problem = None
        key.disabled_at = None
        project = key.project
        project.disabled_reason = project.disabled_problem = None
        project.disabled_at = None

    def disabled_keys(self) -> list[KeyState]:
        """Keys out of service, one per disabled project (its first key stands for it)."""
        found = []
        for project in self.projects:
            if project.disabled_reason:
                found.append(project.keys[0])
            else:
                found += [k for k in project.keys if k.disabled_reason]
        return found

    def soonest_recovery(self, model: str = "") -> float | None:
        """Seconds until a cooling project with a usable key comes back; None if none will."""
        now = time.monotonic()
        waits = [p.cooling_until(model) - now for p in self.projects if p.usable()]
        return max(0.0, min(waits)) if waits else None

    def view(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [p.view(now) for p in self.projects]
