"""Misbehaviour on demand: errors, latency, resets and broken streams, by rule, reproducibly."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gemgate.simulator.config import FaultRule


@dataclass
class _Armed:
    rule: FaultRule
    matched: int = 0
    fired: int = 0


class FaultBoard:
    """The active rules. Tests change them from another thread while the server reads them, so
    changes replace the list (copy-on-write) and counters move under a lock."""

    def __init__(self, rules: list[FaultRule], seed: int | None) -> None:
        self._lock = threading.Lock()
        self._armed = [_Armed(rule) for rule in rules]
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._armed = [*self._armed, _Armed(rule)]

    def clear(self) -> None:
        with self._lock:
            self._armed = []

    def rules(self) -> list[dict[str, object]]:
        return [{**a.rule.model_dump(exclude_none=True), "fired": a.fired} for a in self._armed]

    def pick(self, *, model: str, key: str, project: str, stream: bool,
             kinds: frozenset[str] | None = None) -> FaultRule | None:
        """The first rule that fires for this request, counting it; None when all stay quiet."""
        if not self._armed:
            return None
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if kinds is not None and rule.kind not in kinds:
                    continue
                if not self._matches(rule, model, key, project, stream):
                    continue
                armed.matched += 1
                if rule.every is not None and armed.matched % rule.every:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                armed.fired += 1
                if rule.count is not None and armed.fired >= rule.count:
                    self._armed = [a for a in self._armed if a is not armed]
                return rule
        return None

    @staticmethod
    def _matches(rule: FaultRule, model: str, key: str, project: str, stream: bool) -> bool:
        return (
            (rule.model is None or fnmatchcase(model, rule.model))
            and (rule.key is None or rule.key == key)
            and (rule.project is None or rule.project == project)
            and (stream or not rule.stream_only)
        )
