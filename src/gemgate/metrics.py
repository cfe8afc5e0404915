"""Prometheus metrics, fed by the pipeline's events and read at scrape time from the pool, the
rate state, the budgets, the cache and the ledger.

Names follow the OpenTelemetry GenAI semantic conventions where they define one
(`gen_ai.client.operation.duration` → `gen_ai_client_operation_duration_seconds`,
`gen_ai.client.token.usage` → `gen_ai_client_token_usage`, attributes `gen_ai_request_model`,
`gen_ai_operation_name`, `gen_ai_token_type`), and `gemgate_*` for the rest.

With `serve --workers N` every worker counts into files in `PROMETHEUS_MULTIPROC_DIR` (set by
the supervisor) and a scrape, whichever worker answers it, reads all of them
(prometheus_client's multi-process mode); what is read at scrape time (the pool, quotas,
budgets) is the answering worker's view, which Redis keeps the same on every worker.

Labels never carry a secret (keys are masked as everywhere) and stay bounded: the first
`metrics.max_tenants` tenants seen keep their names, later ones count as `other`, so a gateway
with thousands of virtual keys cannot blow up Prometheus.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from gemgate import __version__
from gemgate.core.call import Call
from gemgate.core.events import (
    AttemptMade,
    Events,
    FellBack,
    Finished,
    PoolChanged,
    QueueWaited,
)
from gemgate.prices import Tokens

_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_WAITS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60)
_REFUSALS = frozenset({"NO_QUOTA_ROOM", "ALL_PROJECTS_COOLING", "NO_HEALTHY_KEYS",
                       "KEY_RATE_LIMITED", "BUDGET_EXCEEDED", "MODEL_NOT_ALLOWED"})


class TenantLabels:
    """The first `limit` tenants keep their names; the rest are `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def __call__(self, name: str) -> str:
        if name in self._known:
            return name
        if len(self._known) < self.limit:
            self._known.add(name)
            return name
        return "other"


def _operation(call: Call) -> str:
    action = call.action
    if action in ("generateContent", "streamGenerateContent"):
        return "chat" if call.surface == "openai" else "generate_content"
    if "mbed" in action:
        return "embeddings"
    return action or call.method.lower()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self, events: Events, cost: Callable[[Call, Tokens], float],
                 max_tenants: int = 50) -> None:
        self.shared_dir = multiprocess_dir()
        if self.shared_dir is not None:  # chosen now, whenever prometheus_client was imported
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self._collectors: list[Collector] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.cost = cost
        self.tenant = TenantLabels(max_tenants)
        r = self.registry
        self.requests = Counter("gemgate_requests", "Requests finished, by surface, model, "
                                "status class and problem.",
                                ["surface", "model", "status_class", "problem"], registry=r)
        self.duration = Histogram("gen_ai_client_operation_duration_seconds",
                                  "Time from a request's arrival to its last byte.",
                                  ["gen_ai_operation_name", "gen_ai_request_model"],
                                  buckets=_LATENCY, registry=r)
        self.token_usage = Histogram("gen_ai_client_token_usage", "Tokens per request.",
                                     ["gen_ai_operation_name", "gen_ai_request_model",
                                      "gen_ai_token_type"], buckets=_TOKENS, registry=r)
        self.tokens = Counter("gemgate_tokens", "Tokens by tenant, model and type.",
                              ["tenant", "model", "type"], registry=r)
        self.spent = Counter("gemgate_cost_usd", "Upstream cost in USD by tenant and model.",
                             ["tenant", "model"], registry=r)
        self.attempts = Counter("gemgate_upstream_attempts", "Upstream attempts by project "
                                "and outcome.", ["project", "outcome"], registry=r)
        self.retries = Counter("gemgate_retries", "Attempts after a request's first.",
                               registry=r)
        self.fallbacks = Counter("gemgate_fallbacks", "Moves to the next model of a chain.",
                                 ["from_model", "to_model"], registry=r)
        self.queue_wait = Histogram("gemgate_queue_wait_seconds", "Time waited for quota room.",
                                    ["priority"], buckets=_WAITS, registry=r)
        self.refusals = Counter("gemgate_admission_refusals", "Requests gemgate refused for "
                                "quota, keys, rights or budgets.", ["reason"], registry=r)
        self.pool_changes = Counter("gemgate_pool_changes", "Keys and projects taken out, set "
                                    "aside, cooling or back.", ["project", "state"], registry=r)
        self.ttfb = Histogram("gemgate_stream_first_byte_seconds", "A stream's time to first "
                              "byte.", ["model"], buckets=_LATENCY, registry=r)
        self.cache = Counter("gemgate_cache_requests", "Cacheable requests by what the cache "
                             "did.", ["result"], registry=r)
        self.saved = Counter("gemgate_cache_saved_usd", "USD the cache's hits saved.",
                             registry=r)
        Gauge("gemgate_build_info", "gemgate's version.", ["version"], registry=r,
              multiprocess_mode="max").labels(__version__).set(1)
        events.subscribe(self._on_event, (AttemptMade, FellBack, QueueWaited, PoolChanged,
                                          Finished))

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._collectors.append(collector)

    def scrape(self) -> bytes:
        if self.shared_dir is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.shared_dir)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            every_worker.register(collector)
        return generate_latest(every_worker)

    # ---- from the events ----------------------------------------------------------------

    def _on_event(self, call: Call | None, event: Any) -> None:
        if isinstance(event, Finished):
            if call is not None:
                self._finished(call, event)
        elif isinstance(event, AttemptMade):
            outcome = "ok" if 200 <= event.status < 300 else str(event.problem or event.status)
            self.attempts.labels(event.provider or event.project, outcome).inc()
            if call is not None and len(call.attempts) > 1:
                self.retries.inc()
        elif isinstance(event, FellBack):
            self.fallbacks.labels(event.from_model, event.to_model).inc()
        elif isinstance(event, QueueWaited):
            self.queue_wait.labels(event.priority).observe(event.waited_ms / 1000)
        elif isinstance(event, PoolChanged):
            self.pool_changes.labels(event.project, event.state).inc()

    def _finished(self, call: Call, event: Finished) -> None:
        problem = str(event.problem or "")
        model = call.model or "-"
        self.requests.labels(call.surface, model, f"{event.status // 100}xx", problem).inc()
        if problem in _REFUSALS:
            self.refusals.labels(problem).inc()
        operation = _operation(call)
        self.duration.labels(operation, model).observe(call.elapsed_ms() / 1000)
        if call.first_byte_ms is not None:
            self.ttfb.labels(model).observe(call.first_byte_ms / 1000)
        if call.cache is not None:
            self.cache.labels(call.cache).inc()
            if call.cache in ("HIT", "SEMANTIC-HIT"):
                self.saved.inc(call.cache_saved_usd)
        tokens = Tokens.of(event.usage)
        if not (tokens.prompt or tokens.candidates or tokens.thoughts):
            return
        tenant = self.tenant(call.tenant.name if call.tenant is not None else "anonymous")
        for kind, count in (("input", tokens.prompt),
                            ("output", tokens.candidates + tokens.thoughts)):
            self.token_usage.labels(operation, model, kind).observe(count)
            self.tokens.labels(tenant, model, kind).inc(count)
        cost = self.cost(call, tokens)
        if cost:
            self.spent.labels(tenant, model).inc(cost)


class StateCollector(Collector):
    """What is read at scrape time: key and project state, cooldowns, quota used against its
    limit, budgets used, the ledger's backlog, the shared backends."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self.read()
        keys = GaugeMetricFamily("gemgate_key_state", "1 for the state each key is in "
                                 "(masked key).", labels=["project", "key", "state"])
        projects = GaugeMetricFamily("gemgate_project_state", "1 for each project's state.",
                                     labels=["project", "state"])
        cooldown = GaugeMetricFamily("gemgate_cooldown_seconds", "Seconds of cooling left, by "
                                     "project and model.", labels=["project", "model"])
        for project in state.get("projects", ()):
            name = project["project"]
            projects.add_metric([name, project["state"]], 1)
            for key in project.get("keys", ()):
                keys.add_metric([name, key["key"], key["state"]], 1)
            for model, left in project.get("cooling", {}).items():
                cooldown.add_metric([name, model], left)
        yield keys
        yield projects
        yield cooldown
        used = GaugeMetricFamily("gemgate_quota_used", "Quota used in the current window.",
                                 labels=["project", "model", "window"])
        limit = GaugeMetricFamily("gemgate_quota_limit", "The window's limit.",
                                  labels=["project", "model", "window"])
        for (project, model, window), (count, cap) in state.get("quota", {}).items():
            used.add_metric([project, model, window], count)
            limit.add_metric([project, model, window], cap)
        yield used
        yield limit
        budget = GaugeMetricFamily("gemgate_budget_used_ratio", "Share of each virtual key's "
                                   "budget spent this period.", labels=["key", "period"])
        for (key, period), ratio in state.get("budgets", {}).items():
            budget.add_metric([key, period], ratio)
        yield budget
        backlog = GaugeMetricFamily("gemgate_ledger_backlog", "Records waiting for a commit "
                                    "(or spooled while the store is away).")
        backlog.add_metric([], state.get("ledger_backlog", 0))
        yield backlog
        shared = GaugeMetricFamily("gemgate_shared_up", "1 while a shared backend answers.",
                                   labels=["part"])
        for part in state.get("shared", ()):
            shared.add_metric([part["part"]], 1 if part["status"] == "ok" else 0)
        yield shared
