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

import asyncio
import os
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
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
    LiveReport,
    PoolChanged,
    QueueWaited,
)
from gemgate.prices import Tokens

_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_TOKENS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_WAITS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60)
_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
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
        self._prepare: list[Callable[[], Awaitable[None]]] = []
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._counts: dict[tuple[Any, tuple[str, ...]], float] = {}
        self._observed: dict[tuple[Any, tuple[str, ...]], tuple[list[int], list[float]]] = {}
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
        self.live_open = Gauge("gemgate_live_sessions", "Live sessions open now, by model.",
                               ["model"], registry=r, multiprocess_mode="livesum")
        self.live_ended = Counter("gemgate_live_sessions_ended", "Live sessions closed, by "
                                  "what ended them.", ["reason"], registry=r)
        self.live_frames = Counter("gemgate_live_frames", "Live frames relayed, by direction "
                                   "(up: client to Google).", ["direction"], registry=r)
        self.live_bytes = Counter("gemgate_live_bytes", "Live bytes relayed, by direction.",
                                  ["direction"], registry=r)
        self.guard_found = Counter("gemgate_guardrail_findings", "Sensitive values the "
                                   "guardrails found, by detector and action.",
                                   ["detector", "action"], registry=r)
        self.guard_rules = Counter("gemgate_guardrail_rules", "Guardrail rules that matched, "
                                   "by rule and action.", ["rule", "action"], registry=r)
        Gauge("gemgate_build_info", "gemgate's version.", ["version"], registry=r,
              multiprocess_mode="max").labels(__version__).set(1)
        self._bounds = {self.duration: _LATENCY, self.token_usage: _TOKENS,
                        self.queue_wait: _WAITS, self.ttfb: _LATENCY}
        events.subscribe(self._on_event, (AttemptMade, FellBack, QueueWaited, PoolChanged,
                                          LiveReport))
        # A recorder, after the ledger's: the meter has counted the request's cost by then.
        events.record_with(self._on_finished)

    # ---- the request's way: sums in dictionaries ----------------------------------------
    # prometheus_client's `labels()`, lock and checks cost about 2 µs per update and 4 µs per
    # observation: measured 31 µs a request (6% of saturated throughput, bench.metrics). A
    # request only adds to plain dictionaries (about 3 µs in all); `flush` moves the sums into
    # the metrics every second and before each scrape.

    def _inc(self, metric: Any, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (metric, labels)
        self._counts[key] = self._counts.get(key, 0.0) + amount

    def _observe(self, metric: Any, labels: tuple[str, ...], value: float) -> None:
        key = (metric, labels)
        pending = self._observed.get(key)
        if pending is None:
            pending = self._observed[key] = ([0] * (len(self._bounds[metric]) + 1), [0.0])
        pending[0][bisect_left(self._bounds[metric], value)] += 1
        pending[1][0] += value

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for (metric, labels), amount in counts.items():
            self._child(metric, labels).inc(amount)
        for (metric, labels), (buckets, total) in observed.items():
            child = self._child(metric, labels)
            for index, count in enumerate(buckets):
                if count:  # a histogram's own (not cumulative) bucket counts and its sum
                    child._buckets[index].inc(count)
            child._sum.inc(total[0])

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        if not labels:
            return metric
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def flush_regularly(self) -> None:
        """So that a worker's counts reach the shared files (and Prometheus) within a second
        even when nobody scrapes this worker."""
        while True:
            await asyncio.sleep(1.0)
            self.flush()

    def before_scrape(self, prepare: Callable[[], Awaitable[None]]) -> None:
        """Work to await before a scrape (reading the shared state, a network round trip)."""
        self._prepare.append(prepare)

    async def prepare(self) -> None:
        for prepare in self._prepare:
            await prepare()

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
        self._collectors.append(collector)

    def scrape(self) -> bytes:
        self.flush()
        if self.shared_dir is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker, path=self.shared_dir)  # type: ignore[no-untyped-call]
        for collector in self._collectors:
            every_worker.register(collector)
        return generate_latest(every_worker)

    # ---- from the events ----------------------------------------------------------------

    def _on_finished(self, call: Call, event: Finished) -> None:
        self._finished(call, event)

    def _on_event(self, call: Call | None, event: Any) -> None:
        if isinstance(event, AttemptMade):
            outcome = "ok" if 200 <= event.status < 300 else str(event.problem or event.status)
            self._inc(self.attempts, (event.provider or event.project, outcome))
            if call is not None and len(call.attempts) > 1:
                self._inc(self.retries, ())
        elif isinstance(event, FellBack):
            self._inc(self.fallbacks, (event.from_model, event.to_model))
        elif isinstance(event, QueueWaited):
            self._observe(self.queue_wait, (event.priority,), event.waited_ms / 1000)
        elif isinstance(event, PoolChanged):
            self._inc(self.pool_changes, (event.project, event.state))
        elif isinstance(event, LiveReport):
            self._live(event)

    def _guarded(self, guarded: Any) -> None:
        actions = guarded.redaction.actions
        for kind, count in guarded.redaction.found.items():
            self._inc(self.guard_found, (kind, actions.get(kind, "log")), count)
        for hit in guarded.hits:
            self._inc(self.guard_rules, (hit.rule.split(":")[0], hit.action))

    def _live(self, report: LiveReport) -> None:
        """A Live session's report: the open gauge moves at once (a gauge is not summed in
        the dictionaries), frames and bytes are counted every few seconds of the session."""
        if report.state == "opened":
            self._child(self.live_open, (report.model,)).inc()
        elif report.state == "closed":
            self._child(self.live_open, (report.model,)).dec()
            self._inc(self.live_ended, (report.ended,))
        for direction, frames, size in (("up", report.frames_up, report.bytes_up),
                                        ("down", report.frames_down, report.bytes_down)):
            if frames:
                self._inc(self.live_frames, (direction,), frames)
                self._inc(self.live_bytes, (direction,), size)

    def _finished(self, call: Call, event: Finished) -> None:
        problem = str(event.problem or "")
        model = call.model or "-"
        inc, observe = self._inc, self._observe
        inc(self.requests, (call.surface, model, _CLASSES[event.status // 100], problem))
        if problem in _REFUSALS:
            inc(self.refusals, (problem,))
        operation = _operation(call)
        observe(self.duration, (operation, model), call.elapsed_ms() / 1000)
        if call.first_byte_ms is not None:
            observe(self.ttfb, (model,), call.first_byte_ms / 1000)
        if call.guarded is not None:
            self._guarded(call.guarded)
        if call.cache is not None:
            inc(self.cache, (call.cache,))
            if call.cache in ("HIT", "SEMANTIC-HIT"):
                inc(self.saved, (), call.cache_saved_usd)
        tokens = Tokens.of(event.usage)
        if not (tokens.prompt or tokens.candidates or tokens.thoughts):
            return
        tenant = self.tenant(call.tenant.name if call.tenant is not None else "anonymous")
        for kind, count in (("input", tokens.prompt),
                            ("output", tokens.candidates + tokens.thoughts)):
            observe(self.token_usage, (operation, model, kind), count)
            inc(self.tokens, (tenant, model, kind), count)
        cost = call.cost_usd if call.cost_usd is not None else self.cost(call, tokens)
        if cost:
            inc(self.spent, (tenant, model), cost)


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
