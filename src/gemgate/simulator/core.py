"""The simulated Google: who holds which key, what each project may still spend, what was received.

The HTTP surfaces (server.py, openai_api.py, control.py) call into this one object; tests and the
control endpoints change it at run time.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gemgate.secrets import mask_key
from gemgate.simulator import errors
from gemgate.simulator.config import FaultRule, ProjectState, SimConfig, SimModel, SimProject
from gemgate.simulator.faults import FaultBoard
from gemgate.simulator.quota import QuotaBook

_FILE_REF = re.compile(rb"files/([a-z0-9]+)")


@dataclass(frozen=True)
class Caller:
    key: str
    project: SimProject
    masked: str
    label: str  # how stats name the key: masks alone can collide across projects

    @classmethod
    def of(cls, key: str, project: SimProject) -> Caller:
        masked = mask_key(key)
        return cls(key, project, masked, f"{project.name}:{masked}")


def _entry(at: float, label: str, project: str | None, model: str, method: str, status: int,
           headers: dict[str, str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": at, "key": label, "project": project, "model": model,
                             "method": method, "status": status}
    if headers:
        entry["headers"] = headers
    return entry


class Simulator:
    def __init__(self, config: SimConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` measures quota windows (tests pass an event loop's virtual time)."""
        self.config = config or SimConfig()
        self.models: dict[str, SimModel] = {m.name: m for m in self.config.models}
        self._projects: dict[str, SimProject] = {}
        self._owner: dict[str, str] = {}
        self._callers: dict[str, Caller] = {}  # resolved keys; reset when projects change
        for project in self.config.projects:
            self.add_project(project)
        self.quota = QuotaBook(self.config, clock)
        self.faults = FaultBoard(self.config.faults, self.config.seed)
        # The JSON bodies Google received, newest last (GET /_sim/requests): what a test
        # reads to see what left the gateway (redacted prompts, say). Never the key.
        self.received: deque[dict[str, str]] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._by_key: Counter[tuple[str, str]] = Counter()
        self._by_status: Counter[tuple[str, int]] = Counter()
        self._by_model: Counter[str] = Counter()
        self._by_project: Counter[str] = Counter()
        self._recent: deque[tuple[Any, ...]] = deque(maxlen=1000)
        self._revoked: set[str] = set()  # keys deleted in "AI Studio": Google calls them invalid
        self.started = time.time()
        # Set by the files surface: which project owns an uploaded file.
        self.file_owner: Callable[[str], str | None] = lambda file_id: None
        self.cache_owner: Callable[[str], str | None] = lambda cache_id: None

    def foreign_file(self, caller: Caller, raw: bytes) -> str | None:
        """A file the request refers to that belongs to another project (Google answers 403)."""
        if b"files/" not in raw:
            return None
        for found in _FILE_REF.findall(raw):
            file_id: str = found.decode()
            owner = self.file_owner(file_id)
            if owner is not None and owner != caller.project.name:
                return file_id
        return None

    def foreign_cache(self, caller: Caller, body: dict[str, Any]) -> str | None:
        """The cachedContent a request names when it is not this project's live cache."""
        name = body.get("cachedContent") or body.get("cached_content")
        if not isinstance(name, str) or not name:
            return None
        cache_id = name.removeprefix("cachedContents/")
        return None if self.cache_owner(cache_id) == caller.project.name else name

    # ---- who is calling -------------------------------------------------------------------

    def add_project(self, project: SimProject) -> None:
        for key in project.keys:
            owner = self._owner.get(key)
            if owner is not None and owner != project.name:
                raise ValueError(f"key {mask_key(key)} already belongs to project {owner}")
        self._projects[project.name] = project
        for key in project.keys:
            self._owner[key] = project.name
        self._callers = {}

    def project(self, name: str) -> SimProject:
        return self._projects[name]

    def projects(self) -> list[SimProject]:
        return list(self._projects.values())

    def set_project_state(self, name: str, state: ProjectState) -> None:
        """E.g. suspend a project, or bring it back so a gateway's probe finds it healthy."""
        self._projects[name] = self._projects[name].model_copy(update={"state": state})
        self._callers = {}

    def revoke_key(self, key: str, revoked: bool = True) -> None:
        """A key deleted by its owner (or restored): Google answers API_KEY_INVALID for it."""
        if key not in self._owner:
            raise KeyError(key)
        (self._revoked.add if revoked else self._revoked.discard)(key)

    def identify(self, key: str | None) -> tuple[Caller | None, tuple[int, bytes] | None]:
        """The caller behind a key, or Google's answer for a missing, unknown or barred one."""
        if not key:
            return None, errors.missing_key()
        if key in self._revoked:
            return None, errors.invalid_key()
        caller = self._callers.get(key)
        if caller is None:
            name = self._owner.get(key)
            if name is None:
                if not self.config.any_key or not self._projects:
                    return None, errors.invalid_key()
                name = next(iter(self._projects))
            caller = Caller.of(key, self._projects[name])
            if len(self._callers) < 10_000:  # any_key mode must not grow without bound
                self._callers[key] = caller
        project = caller.project
        if project.state == "api_disabled":
            return caller, errors.service_disabled(project.project_number())
        if project.state == "suspended":
            return caller, errors.consumer_suspended(caller.key, project.project_number())
        if project.state == "region_blocked":
            return caller, errors.location_not_supported()
        if project.state == "free_tier_unavailable" and project.tier == "free":
            return caller, errors.free_tier_unavailable()
        if project.state in ("ip_restricted", "referrer_restricted", "api_restricted"):
            return caller, errors.key_restricted(project.state, project.project_number(),
                                                 "127.0.0.1")
        return caller, None

    # ---- faults ---------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule | None = None, **fields: Any) -> FaultRule:
        rule = rule or FaultRule(**fields)
        self.faults.add(rule)
        return rule

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---- what was received ----------------------------------------------------------------

    def record(self, caller: Caller | None, model: str, method: str, status: int,
               headers: dict[str, str] | None = None) -> None:
        """Counts a request under `project:masked-key` (masks alone can collide)."""
        project = caller.project.name if caller else None
        label = caller.label if caller else "-"
        with self._lock:
            self._by_key[(label, method)] += 1
            self._by_status[(label, status)] += 1
            if project:
                self._by_project[project] += 1
            if model:
                self._by_model[model] += 1
            # Kept as a tuple; turned into a readable entry only when stats are asked for.
            self._recent.append((time.time(), label, project, model, method, status, headers))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_key: dict[str, dict[str, Any]] = {}
            for (label, method), count in self._by_key.items():
                row = by_key.setdefault(label, {"requests": 0, "methods": {}, "statuses": {}})
                row["requests"] += count
                row["methods"][method] = count
            for (label, status), count in self._by_status.items():
                by_key[label]["statuses"][str(status)] = count
            return {
                "requests": sum(self._by_key.values()),
                "by_key": by_key,
                "by_project": dict(self._by_project),
                "by_model": dict(self._by_model),
                "recent": [_entry(*row) for row in list(self._recent)[-100:]],
                "faults": self.faults.rules(),
            }

    def reset(self) -> None:
        """Forget what was received and spent; keep projects, models and faults."""
        with self._lock:
            self._by_key.clear()
            self._by_status.clear()
            self._by_model.clear()
            self._by_project.clear()
            self._recent.clear()
            self.received.clear()
        self.quota.reset()
        self.faults.reseed(self.config.seed)
