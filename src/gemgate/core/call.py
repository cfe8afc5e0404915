"""The request as the gateway understands it, handed from stage to stage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gemgate.problems import ProblemId

if TYPE_CHECKING:
    from gemgate.access.vkeys import VirtualKey
    from gemgate.core.answer import Answer


@dataclass(frozen=True, slots=True)
class Tenant:
    """Who is calling: a token from the configuration, or a virtual key with its rights."""

    name: str
    priority: str = "normal"
    weight: float = 1.0
    fallback: bool = True
    key: VirtualKey | None = None
    cache: bool = True  # may use the response cache
    semantic_cache: bool = False  # may be answered from a similar request's entry
    cache_ttl_s: float | None = None  # instead of the configured default
    semantic_threshold: float | None = None  # instead of the configured default
    guardrails: str | None = None  # the configured tenant's policy (a key's is in its spec)

    @property
    def id(self) -> str:
        """Stable across a virtual key's rotation and a tenant's config edits: what owns
        resources and cache entries."""
        return f"vkey:{self.key.id}" if self.key is not None else f"tenant:{self.name}"

    def allows_model(self, model: str) -> bool:
        return self.key is None or self.key.allows_model(model)


@dataclass(slots=True)
class Attempt:
    project: str
    masked_key: str
    status: int  # 0 when no HTTP answer came (connection error, timeout)
    problem: ProblemId | None
    upstream_ms: float
    provider: str | None = None  # an OpenAI-compatible provider's name; None for Google


@dataclass(slots=True)
class Call:
    request_id: str
    method: str  # HTTP method
    version: str  # v1beta | v1 | v1alpha | "" for routes outside a version
    path: str  # upstream path after the version, e.g. "models/gemini-2.5-flash:generateContent"
    query: str  # forwarded query string, still encoded, with the client's `key` removed
    headers: dict[str, str]  # forwarded request headers
    body: bytes
    lang: str = "en"
    surface: str = "gemini"  # the wire format the client speaks: gemini | openai
    tenant: Tenant | None = None
    model: str = ""
    action: str = ""  # generateContent, streamGenerateContent, countTokens, … or "" for others
    stream: bool = False
    sse: bool = False
    started: float = field(default_factory=time.perf_counter)
    deadline: float = 0.0  # perf_counter time by which the answer must have started
    affinity: str | None = None  # the project that owns a referenced file/cache/batch
    parsed: Any = None
    priority: str = "normal"
    asked_priority: str | None = None  # x-gemgate-priority, as the client sent it
    asked_fallback: str = ""  # x-gemgate-fallback, as the client sent it
    fallback: bool = True  # may a fallback model answer?
    model_asked: str = ""  # the model (or alias, or "auto") the client named
    route_reason: str | None = None  # why this model: for x-gemgate-route
    estimated_tokens: int | None = None  # input tokens, estimated for quota admission
    client_ip: str | None = None
    refused_model: str = ""  # a model name refused as malformed, for the log and the ledger
    key_tokens: Any = None  # the counters' handle: where the key's TPM counted the estimate
    budget_hold: Any = None  # the counters' hold on the key's budgets (the estimated cost)
    key_scope: Any = None  # the key's own windows, left to admission (state.Scope)
    asked_cache: str = ""  # x-gemgate-cache, as the client sent it
    cache_control: str = ""  # Cache-Control, as the client sent it
    cache_plan: Any = None  # what the response cache does with this call (cache.policy.Plan)
    cache: str | None = None  # HIT, SEMANTIC-HIT, MISS, REFRESH or BYPASS (a cacheable call)
    cache_age_s: float = 0.0  # a hit's entry's age
    cache_similarity: float | None = None  # a semantic hit's
    cache_saved_usd: float = 0.0  # what a hit would have cost upstream
    # A hedged call's losing attempt's tokens, billed with the call (pipeline/hedging.py).
    hedge_usage: dict[str, int] | None = None
    # What the guardrails stage found and did (pipeline/guardrails.py); None: no policy.
    guarded: Any = None
    cost_usd: float | None = None  # what it cost upstream, once the meter has counted it
    trace: Any = None  # the request's span and its context (gemgate.tracing), when tracing
    trace_id: str | None = None
    first_byte_ms: float | None = None  # a stream's first chunk in hand (from arrival)
    cache_vector: Any = None  # (context, embedding) of the last user turn, to index if kept
    attempts: list[Attempt] = field(default_factory=list)
    local: Answer | None = None  # an answer a stage gives itself (no upstream call)
    charge: Any = None  # what Google bills beyond the call's usage (pipeline/charges.Charge)
    idempotency_key: str | None = None  # Idempotency-Key, as the client sent it
    idempotency: str | None = None  # the record this call answers for (pipeline/idempotency)

    def use_model(self, model: str) -> None:
        """Points the call at another model (an alias's target, auto's choice, a fallback)."""
        self.model = model
        self.path = f"models/{model}:{self.action}" if self.action else f"models/{model}"

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
