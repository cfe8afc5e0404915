"""The pool of upstream keys, grouped by Google Cloud project, with each one's health.

A key is active or disabled (with a reason and a time); a project may be cooling until a time
(Google's RetryInfo) or disabled as a whole (API not enabled, region refused). Selection spreads
load: the least busy, least recently used project first, then its least busy, least recently
used key.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gemgate.config import OutlierConfig, ProjectConfig
from gemgate.core.classify import Verdict
from gemgate.core.events import PoolChanged
from gemgate.problems import ProblemId
from gemgate.secrets import key_id, mask_key
from gemgate.upstream.outliers import Outlier, OutlierPolicy

log = logging.getLogger("gemgate.pool")


@dataclass(slots=True, eq=False)
class KeyState:
    secret: str
    project: ProjectState
    masked: str = ""
    disabled_reason: str | None = None
    disabled_problem: ProblemId | None = None
    disabled_at: float | None = None  # wall-clock time, for people
    in_flight: int = 0
    last_used: float = 0.0
    successes: int = 0
    failures: int = 0
    outlier: Outlier = field(default_factory=Outlier)
    id: str = ""  # a digest prefix of the secret: the same on every replica, useless to others
    tag: str = ""  # the operator's label, given when the key was added in the console
    held: bool = False  # taken out of use by the operator: the prober leaves it alone
    # The last failure Google answered with (for the console: what, why, when).
    last_problem: ProblemId | None = None
    last_reason: str | None = None
    last_error_at: float | None = None

    @property
    def active(self) -> bool:
        return self.disabled_reason is None and self.project.disabled_reason is None

    def view(self, now: float) -> dict[str, Any]:
        return {"key": self.masked, "state": "active" if self.disabled_reason is None
                else "disabled", "reason": self.disabled_reason,
                "problem": self.disabled_problem, "disabled_at": self.disabled_at,
                "in_flight": self.in_flight, "successes": self.successes,
                "failures": self.failures, "outlier": self.outlier.view(now),
                "id": self.id, "tag": self.tag, "held": self.held,
                "last_error": None if self.last_error_at is None else {
                    "problem": self.last_problem, "reason": self.last_reason,
                    "at": self.last_error_at}}


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
    disabled_problem: ProblemId | None = None
    disabled_at: float | None = None
    in_flight: int = 0
    last_used: float = 0.0
    outlier: Outlier = field(default_factory=Outlier)

    def cooling_until(self, model: str = "") -> float:
        whole = self.cooling.get("*", 0.0)
        return max(whole, self.cooling.get(model, 0.0)) if model else whole

    def is_cooling(self, model: str, now: float) -> bool:
        return self.cooling_until(model) > now

    def usable(self) -> bool:
        return self.disabled_reason is None and any(k.disabled_reason is None for k in self.keys)

    def unusable_reason(self) -> tuple[str, ProblemId | None] | None:
        """Why no request can use this project: (reason, problem id); None while it can. A
        project whose every key is disabled is as out of use as a disabled project."""
        if self.disabled_reason:
            return self.disabled_reason, self.disabled_problem
        if any(k.disabled_reason is None for k in self.keys):
            return None
        problems = Counter(k.disabled_problem for k in self.keys)
        problem = problems.most_common(1)[0][0]
        return f"every key is disabled ({_count(problems)})", problem

    def view(self, now: float) -> dict[str, Any]:
        cooling = {m: round(t - now, 3) for m, t in self.cooling.items() if t > now}
        unusable = self.unusable_reason()
        # An outlier ejection is shown apart (`outlier`): the project is still usable.
        state = "disabled" if unusable else "cooling" if cooling else "active"
        return {"project": self.name, "tier": self.tier, "state": state,
                "cooling_for_s": max(cooling.values(), default=0.0), "cooling": cooling,
                "cooling_reason": self.cooling_reason,
                "reason": unusable[0] if unusable else None,
                "problem": unusable[1] if unusable else None, "in_flight": self.in_flight,
                "active_keys": sum(k.disabled_reason is None for k in self.keys),
                "outlier": self.outlier.view(now),
                "proxy": "configured" if self.proxy else None,
                "keys": [k.view(now) for k in self.keys]}


def _count(problems: Counter[ProblemId | None]) -> str:
    return ", ".join(f"{problem or 'unknown'} × {n}" for problem, n in problems.most_common())


@dataclass(slots=True)
class Lease:
    """One key lent to one attempt; return it with `KeyPool.release`."""

    key: KeyState

    @property
    def project(self) -> ProjectState:
        return self.key.project


class KeyPool:
    def __init__(self, projects: list[ProjectConfig], default_cooldown_s: float = 60.0,
                 outliers: OutlierConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        """`clock` orders cooldowns and ejections (tests pass a fake one); `wall` stamps
        what people read (when a key was disabled)."""
        self.default_cooldown_s = default_cooldown_s
        self.outliers = OutlierPolicy(outliers or OutlierConfig())
        self.clock, self.wall = clock, wall
        # Told of every key or project taken out of use, set aside, or back (Events).
        self.on_change: Callable[[PoolChanged], None] = lambda change: None
        self.projects: list[ProjectState] = []
        for config in projects:
            project = ProjectState(config.name, config.tier, config.proxy)
            project.keys = [KeyState(k, project, mask_key(k), id=key_id(k)) for k in config.keys]
            self.projects.append(project)
        self._by_name = {p.name: p for p in self.projects}

    def project(self, name: str) -> ProjectState | None:
        return self._by_name.get(name)

    def usable(self) -> list[ProjectState]:
        return [p for p in self.projects if p.usable()]

    def acquire(self, avoid: set[str] | None = None, only: str | None = None,
                model: str = "") -> Lease | None:
        """The best key now: healthy, in a project not cooling for `model` and not in `avoid`;
        keys and projects set aside as outliers only when nothing else is left."""
        now = self.clock()
        best: KeyState | None = None
        best_rank: tuple[int, int, float, int, float] = (0, 0, 0.0, 0, 0.0)
        for project in self.projects:
            if (project.disabled_reason or project.is_cooling(model, now)
                    or (avoid and project.name in avoid)
                    or (only is not None and project.name != only)):
                continue
            project_out = set_aside(project.outlier, project.in_flight, now)
            for key in project.keys:
                if key.disabled_reason is not None:
                    continue
                # Quota is per project: spread over projects first, then over their keys.
                aside = project_out + set_aside(key.outlier, key.in_flight, now)
                rank = (aside, project.in_flight, project.last_used, key.in_flight,
                        key.last_used)
                if best is None or rank < best_rank:
                    best, best_rank = key, rank
        if best is None:
            return None
        best.in_flight += 1
        best.project.in_flight += 1
        best.last_used = best.project.last_used = now
        return Lease(best)

    def give_back(self, lease: Lease) -> None:
        """Returns a key whose attempt said nothing about it (a hedge cancelled, a Live
        session's project found full): no success, no failure."""
        lease.key.in_flight -= 1
        lease.project.in_flight -= 1

    def release(self, lease: Lease, verdict: Verdict, model: str = "") -> None:
        """Returns the key and acts on what its attempt revealed. A 429 cools the project for
        the model that was asked for (quotas are per model), or for every model when unknown."""
        key, project = lease.key, lease.project
        key.in_flight -= 1
        project.in_flight -= 1
        self._judge_outliers(key, verdict)
        if verdict.ok:
            key.successes += 1
            return
        key.failures += 1
        key.last_problem, key.last_reason, key.last_error_at = (verdict.problem, verdict.reason,
                                                                self.wall())
        if verdict.action == "cool_project":
            self.cool(project, verdict.cooldown_s or self.default_cooldown_s, verdict.reason,
                      model or verdict.quota_model or "*")
        elif verdict.action == "disable_key" and key.disabled_reason is None:
            key.disabled_reason, key.disabled_problem = verdict.reason, verdict.problem
            key.disabled_at = self.wall()
            log.warning("upstream key %s of project %s taken out of use: %s (%s)", key.masked,
                        project.name, verdict.reason, verdict.problem)
            self.on_change(PoolChanged(project.name, key.masked, "disabled", verdict.reason,
                                       verdict.problem, key.id))
            self._log_if_unusable(project)
        elif verdict.action == "disable_project" and project.disabled_reason is None:
            project.disabled_reason, project.disabled_problem = verdict.reason, verdict.problem
            project.disabled_at = self.wall()
            log.warning("upstream project %s taken out of use (found with key %s): %s (%s)",
                        project.name, key.masked, verdict.reason, verdict.problem)
            self.on_change(PoolChanged(project.name, None, "disabled", verdict.reason,
                                       verdict.problem))

    def _judge_outliers(self, key: KeyState, verdict: Verdict) -> None:
        """A server failure or lost connection counts against the key and its project; any
        other answer (a success, a 400, a 429) clears their runs."""
        now, project = self.clock(), key.project
        if verdict.retry and verdict.action == "none":
            keys = [k for p in self.projects for k in p.keys]
            for name, outlier, peers in ((f"key {key.masked}", key.outlier, keys),
                                         (f"project {project.name}", project.outlier,
                                          self.projects)):
                aside = sum(p.outlier.state(now) == "ejected" for p in peers)
                room = max(1, int(len(peers) * self.outliers.max_share)) - aside
                if self.outliers.failed(outlier, now, may_eject=room > 0
                                        or outlier.state(now) == "ejected"):
                    log.warning("upstream %s set aside for %.0f s after repeated failures "
                                "(%s; ejection %d)", name, outlier.ejected_until - now,
                                verdict.problem, outlier.ejections)
                    mine = outlier is key.outlier
                    self.on_change(PoolChanged(
                        project.name, key.masked if mine else None, "ejected",
                        "repeated failures", verdict.problem, key.id if mine else None,
                        outlier.ejected_until - now))
        else:
            self.outliers.answered(key.outlier, now)
            self.outliers.answered(project.outlier, now)

    @staticmethod
    def _log_if_unusable(project: ProjectState) -> None:
        unusable = project.unusable_reason()
        if unusable is not None:
            log.warning("upstream project %s has no usable key left: %s", project.name,
                        unusable[0])

    def cool(self, project: ProjectState, seconds: float, reason: str,
             model: str = "*", tell: bool = True) -> None:
        until = self.clock() + seconds
        if until > project.cooling.get(model, 0.0):
            project.cooling[model] = until
            project.cooling_reason = reason
            if tell:
                self.on_change(PoolChanged(project.name, None, "cooling", reason,
                                           ProblemId.QUOTA_EXHAUSTED, seconds=seconds,
                                           model=model))

    def enable(self, key: KeyState) -> None:
        if key.disabled_reason or key.project.disabled_reason:
            log.info("upstream key %s of project %s back in use", key.masked, key.project.name)
            self.on_change(PoolChanged(key.project.name, key.masked, "enabled", "probe", None,
                                       key.id))
        key.disabled_reason = key.disabled_problem = None
        key.disabled_at = None
        project = key.project
        project.disabled_reason = project.disabled_problem = None
        project.disabled_at = None

    def apply(self, change: PoolChanged) -> None:
        """A change another replica made (state/health.py), applied here without telling it
        again. Unknown projects or keys (a replica with another configuration) are ignored."""
        project = self._by_name.get(change.project)
        if project is None:
            return
        key = next((k for k in project.keys if k.id == change.key_id), None)
        if change.key_id is not None and key is None:
            return
        now = self.clock()
        if change.state == "disabled":
            target: KeyState | ProjectState = key if key is not None else project
            if key is not None:
                key.held = change.problem == ProblemId.KEY_HELD
            if target.disabled_reason is None:
                target.disabled_reason, target.disabled_problem = change.reason, change.problem
                target.disabled_at = self.wall()
                log.warning("upstream %s taken out of use by another replica: %s",
                            key.masked if key else f"project {project.name}", change.reason)
        elif change.state == "enabled" and key is not None:
            key.held = False
            key.disabled_reason = key.disabled_problem = None
            project.disabled_reason = project.disabled_problem = None
        elif change.state == "cooling":
            self.cool(project, change.seconds, change.reason, change.model, tell=False)
        elif change.state == "ejected":
            outlier = key.outlier if key is not None else project.outlier
            outlier.ejected_until = max(outlier.ejected_until, now + change.seconds)
            outlier.probing = True

    def disabled_keys(self) -> list[KeyState]:
        """Keys out of service that the prober may bring back, one per disabled project (its
        first key stands for it); never a key the operator holds."""
        found = []
        for project in self.projects:
            if project.disabled_reason:
                found += [k for k in project.keys if not k.held][:1]
            else:
                found += [k for k in project.keys if k.disabled_reason and not k.held]
        return found

    # ---- the operator's changes (upstream/keyring.py keeps them) ----------------------------

    def find_key(self, key_id: str) -> KeyState | None:
        return next((k for p in self.projects for k in p.keys if k.id == key_id), None)

    def add_key(self, project_name: str, tier: str, secret: str, tag: str = "") -> KeyState:
        """A key added while running; its project is made when it is new."""
        project = self._by_name.get(project_name)
        if project is None:
            project = self._by_name[project_name] = ProjectState(project_name, tier, None)
            self.projects.append(project)
        key = KeyState(secret, project, mask_key(secret), id=key_id(secret), tag=tag)
        project.keys.append(key)
        log.info("upstream key %s added to project %s", key.masked, project_name)
        return key

    def remove_key(self, key: KeyState) -> None:
        """Takes a key out of the pool for good; a project left without keys goes too. An
        attempt already holding it finishes (its lease keeps the objects it needs)."""
        project = key.project
        if key in project.keys:
            project.keys.remove(key)
        if not project.keys and self._by_name.get(project.name) is project:
            self.projects.remove(project)
            del self._by_name[project.name]
        log.info("upstream key %s removed from project %s", key.masked, project.name)

    def hold(self, key: KeyState) -> None:
        """Out of use by the operator's hand, until the operator says otherwise."""
        key.held = True
        key.disabled_reason, key.disabled_problem = "disabled by the operator", ProblemId.KEY_HELD
        key.disabled_at = self.wall()
        log.warning("upstream key %s of project %s disabled by the operator", key.masked,
                    key.project.name)
        self.on_change(PoolChanged(key.project.name, key.masked, "disabled",
                                   "disabled by the operator", ProblemId.KEY_HELD, key.id))

    def unhold(self, key: KeyState) -> None:
        key.held = False
        key.disabled_reason = key.disabled_problem = None
        key.disabled_at = None
        log.info("upstream key %s of project %s enabled by the operator", key.masked,
                 key.project.name)
        self.on_change(PoolChanged(key.project.name, key.masked, "enabled", "operator", None,
                                   key.id))

    def soonest_recovery(self, model: str = "") -> float | None:
        """Seconds until a cooling project with a usable key comes back; None if none will."""
        now = self.clock()
        waits = [p.cooling_until(model) - now for p in self.projects if p.usable()]
        return max(0.0, min(waits)) if waits else None

    def view(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [p.view(now) for p in self.projects]

    def why_unusable(self) -> tuple[str, ProblemId | None] | None:
        """None while some key can serve some model; else what took every key out of use (a
        sentence, and the commonest problem id — whose hint says how to fix it)."""
        reasons = [p.unusable_reason() for p in self.projects]
        if not self.projects:
            return "no upstream keys are configured", None
        if any(r is None for r in reasons):
            return None
        found = [r for r in reasons if r is not None]
        problems = Counter(problem for _, problem in found)
        problem = problems.most_common(1)[0][0]
        words = _WHAT.get(problem, "disabled") if problem else "disabled"
        return f"every upstream key is {words} ({_count(problems)})", problem


# How each problem that takes keys out of use reads in "every upstream key is …".
_WHAT = {ProblemId.API_KEY_INVALID: "invalid", ProblemId.CONSUMER_SUSPENDED: "suspended",
         ProblemId.API_KEY_RESTRICTED: "restricted",
         ProblemId.SERVICE_DISABLED: "in a project without the API enabled",
         ProblemId.LOCATION_UNSUPPORTED: "in a region Google does not serve",
         ProblemId.FREE_TIER_UNAVAILABLE: "on a free tier not offered in this country"}


def set_aside(outlier: Outlier, in_flight: int, now: float) -> int:
    """1 for an ejected key or project, or one on trial that already has its one request."""
    state = outlier.state(now)
    return int(state == "ejected" or (state == "probing" and in_flight > 0))
