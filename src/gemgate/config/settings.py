"""The settings' shape: one typed object, each section a model with its defaults and checks
(why a default is what it is is said beside it)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gemgate.config.guardrails import GuardrailsConfig
from gemgate.config.keys import check_proxy, clean_key

GOOGLE_URL = "https://generativelanguage.googleapis.com"
Tier = Literal["free", "tier1", "tier2", "tier3"]
Priority = Literal["high", "normal", "low", "batch"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    """Overrides of the built-in limits for one model (or "*"): read yours in AI Studio."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)


class ProjectConfig(_Strict):
    """A Google Cloud project: quota is per project, so keys are grouped by it."""

    name: str = Field(min_length=1)
    tier: Tier = "free"
    keys: list[str] = Field(min_length=1)
    proxy: str | None = None  # http://, https://, socks5:// — how this project reaches Google
    limits: dict[str, LimitsConfig] = Field(default_factory=dict)  # model id or "*"
    live_sessions: int | None = Field(default=None, ge=1)  # concurrent Live; None: the tier's

    @field_validator("keys")
    @classmethod
    def _clean(cls, keys: list[str]) -> list[str]:
        cleaned, problems = [], []
        for number, key in enumerate(keys, start=1):
            try:
                cleaned.append(clean_key(key))
            except ValueError as exc:
                problems.append(f"key #{number}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return cleaned

    @field_validator("proxy")
    @classmethod
    def _proxy_scheme(cls, proxy: str | None) -> str | None:
        return check_proxy(proxy)


class TenantConfig(_Strict):
    name: str = Field(min_length=1)
    token: str = Field(min_length=8)
    priority: Priority = "normal"  # when the request names none (x-gemgate-priority)
    weight: float = Field(default=1.0, gt=0)  # share of contended quota against other tenants
    fallback: bool = True  # may be answered by a fallback model
    cache: bool = True  # may be answered from (and fill) the response cache
    semantic_cache: bool = False  # may be answered from a similar request's entry
    cache_ttl_s: float | None = Field(default=None, gt=0)  # instead of cache.ttl_s
    semantic_threshold: float | None = Field(default=None, gt=0, le=1)  # instead of the default
    guardrails: str | None = None  # a guardrails policy's name ("off": none)

    @field_validator("token")
    @classmethod
    def _clean(cls, token: str) -> str:
        return clean_key(token)


class RetryConfig(_Strict):
    attempts: int = Field(default=5, ge=1, le=20)  # tries in all, the first included
    base_delay_s: float = Field(default=0.2, ge=0)
    max_delay_s: float = Field(default=4.0, ge=0)
    # Longest wait for one attempt's answer (a stream's first chunk) before trying another key
    # within the deadline. Off by default: long generations legitimately take minutes.
    attempt_timeout_s: float | None = Field(default=None, gt=0)


class HedgingConfig(_Strict):
    """Hedged requests (pipeline/hedging.py): a second attempt on another project when the
    first is slower than the model's recent p95. Off by default: it spends upstream calls."""

    enabled: bool = False
    models: list[str] = Field(default_factory=list)  # model ids or prefixes; empty: every model
    actions: list[str] = Field(default_factory=lambda: ["generateContent"])  # never streams
    percentile: float = Field(default=0.95, gt=0.5, lt=1)
    min_samples: int = Field(default=50, ge=10)  # successful calls seen before hedging a model
    min_delay_s: float = Field(default=0.05, ge=0)  # never hedge sooner than this
    max_extra_share: float = Field(default=0.1, gt=0, le=1)  # hedges per request, at most


class SchedulingConfig(_Strict):
    enabled: bool = True
    minute_s: float = Field(default=60.0, gt=0)  # the length of Google's "minute" (tests shorten)
    day_s: float | None = Field(default=None, gt=0)  # None: the day ends at midnight Pacific
    margin_s: float = Field(default=0.5, ge=0)  # entries count this much longer than Google's
    spill: list[Priority] = Field(default_factory=lambda: list[Priority](["high", "normal"]))
    fallback_after_s: float = Field(default=1.0, ge=0)  # waiting for room before falling back


class AutoConfig(_Strict):
    """The models `model: auto` chooses between, by the request's score."""

    light: str = "gemini-2.5-flash-lite"
    standard: str = "gemini-2.5-flash"
    heavy: str = "gemini-2.5-pro"


class LedgerConfig(_Strict):
    """Where usage records go: a SQLite file (WAL), written by one group-committing thread."""

    enabled: bool = True
    path: str = "gemgate.db"
    # normal: a commit survives the gateway being killed; full: also a power cut (fsync).
    synchronous: Literal["normal", "full"] = "normal"
    retention_days: float | None = Field(default=400, gt=0)  # request rows; None keeps all
    # How long a response waits for its record's commit before going out anyway (and the
    # record is still written once the database answers).
    commit_timeout_s: float = Field(default=5.0, gt=0)
    price_free_tier: bool = False  # count free-tier requests at paid prices (showback)
    key_refresh_s: float = Field(default=1.0, gt=0)  # how soon CLI key changes are seen
    # Keep each request's body for the console's Requests page (off: prompts are not kept).
    keep_prompts: bool = False
    prompt_retention_h: float = Field(default=24.0, gt=0)


class SemanticCacheConfig(_Strict):
    """A stored answer for a request whose last user turn means the same (opt-in)."""

    enabled: bool = False
    threshold: float = Field(default=0.95, gt=0, le=1)  # cosine similarity of the embeddings
    model: str = "text-embedding-004"  # Gemini's own, through gemgate's own pool
    dimensions: int = Field(default=256, ge=8, le=3072)  # outputDimensionality: small is enough
    max_entries: int = Field(default=10_000, ge=1)  # per scope, oldest first out
    with_tools: bool = False  # requests with tools or attachments never match unless set


class CacheConfig(_Strict):
    """The response cache: exact (the same request answered again), and optionally semantic."""

    # off; deterministic: only answers meant to repeat (temperature 0, or a seed); all
    mode: Literal["off", "deterministic", "all"] = "deterministic"
    scope: Literal["tenant", "global"] = "tenant"  # global: tenants share entries
    ttl_s: float = Field(default=3600.0, gt=0)
    ttl_by_model: dict[str, float] = Field(default_factory=dict)  # model id → seconds
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)  # the memory backend's bound
    max_entry_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)  # larger answers: not kept
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class MetricsConfig(_Strict):
    """`/metrics` in Prometheus's format."""

    enabled: bool = True
    token: str | None = None  # when set, scrapes must send `Authorization: Bearer <token>`
    max_tenants: int = Field(default=50, ge=1)  # tenants named in labels; the rest: "other"


class TracingConfig(_Strict):
    """OpenTelemetry traces (needs `pip install 'gemgate[otel]'`)."""

    enabled: bool = False
    service_name: str = "gemgate"
    otlp_endpoint: str | None = None  # e.g. http://collector:4318/v1/traces


class StateConfig(_Strict):
    """Where the counts every replica must agree on live: this process's memory (one gateway),
    or Redis (replicas and workers share quota windows, key health, budgets, upload sessions)."""

    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "gemgate"  # every key and channel gemgate uses starts with it
    # While Redis is unreachable each replica serves on its own counts, with every limit
    # divided by this number so that together they stay within Google's.
    replicas: int = Field(default=1, ge=1)
    # A reservation (quota room, budget) whose replica never settled it (killed) is given back
    # after this long, so a dead replica cannot leave phantom 429s behind.
    reservation_ttl_s: float = Field(default=900.0, gt=0)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", url):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url


class StoreConfig(_Strict):
    """Where the ledger, rollups, virtual keys and resource owners are kept: the embedded SQLite
    file (`ledger.path`), or PostgreSQL shared by every replica."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str = "postgresql://postgres@127.0.0.1:5432/gemgate"
    schema_name: str = Field(default="public", alias="schema", pattern=r"^[a-z_][a-z0-9_]*$")
    # Records that could not reach PostgreSQL wait here (a local SQLite file, durable) and are
    # replayed, exactly once, when it answers again.
    spool_path: str = "gemgate-spool.db"
    pool_size: int = Field(default=8, ge=1)

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, dsn: str) -> str:
        if not re.match(r"^postgres(ql)?://", dsn):
            raise ValueError("must be a postgresql:// URL")
        return dsn


class BudgetConfig(_Strict):
    alert_at: float = Field(default=0.8, gt=0, lt=1)  # share of a budget that raises an alert
    webhook_url: str | None = None  # receives each alert as a JSON POST

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url or None


class PriceConfig(_Strict):
    """USD per 1M tokens; see gemgate/prices.py for how each is applied."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached: float = Field(default=0.0, ge=0)
    audio_input: float | None = Field(default=None, ge=0)
    audio_output: float | None = Field(default=None, ge=0)
    input_long: float | None = Field(default=None, ge=0)
    output_long: float | None = Field(default=None, ge=0)
    cached_long: float | None = Field(default=None, ge=0)
    storage: float | None = Field(default=None, ge=0)  # context cache, per 1M tokens per hour


_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class ProviderConfig(_Strict):
    """An OpenAI-compatible upstream (DeepSeek, OpenRouter, a vLLM server, …): the last links of
    fallback chains, or an alias's target, named `<provider>/<model>`."""

    name: str
    base_url: str  # the API root its SDK would use, e.g. https://api.deepseek.com/v1
    keys: list[str] = Field(min_length=1)  # tried in turn; a refused key cools for a while
    models: dict[str, str] = Field(default_factory=dict)  # gemgate's name -> the provider's id
    proxy: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _PROVIDER_NAME.match(name) or name in ("gemini", "models", "tunedmodels"):
            raise ValueError("a provider name is lower-case letters, digits, '-' or '_', and "
                             "not gemini, models or tunedModels")
        return name

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("keys")
    @classmethod
    def _clean(cls, keys: list[str]) -> list[str]:
        return [clean_key(key) for key in keys]

    @field_validator("proxy")
    @classmethod
    def _proxy_scheme(cls, proxy: str | None) -> str | None:
        return check_proxy(proxy)


class RemoteImagesConfig(_Strict):
    """Image URLs in OpenAI messages are fetched by the gateway only from these hosts."""

    allowed_hosts: list[str] = Field(default_factory=list)  # "img.example.com", "*.cdn.com"
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    timeout_s: float = Field(default=10.0, gt=0)


class OpenAIConfig(_Strict):
    """The OpenAI-compatible surface (/v1/chat/completions, /v1beta/openai/…)."""

    remote_images: RemoteImagesConfig = Field(default_factory=RemoteImagesConfig)


class LiveConfig(_Strict):
    """Live API sessions (edges/live.py): bounds a tenant and a silent client cannot exceed."""

    max_sessions_per_tenant: int = Field(default=20, ge=1)  # open at once, on every replica
    idle_timeout_s: float = Field(default=600.0, gt=0)  # no frame either way for this long
    max_duration_s: float = Field(default=3600.0, gt=0)  # Google ends sessions sooner anyway
    # How often an open session's rights are read again (a key revoked or disabled, a budget
    # spent by the tenant's other calls) and its seats' leases renewed.
    check_every_s: float = Field(default=5.0, gt=0)
    # The longest an ephemeral token minted by gemgate may live (Google's own cap is 20 h).
    token_max_lifetime_s: float = Field(default=72_000.0, gt=0)


class OutlierConfig(_Strict):
    """Keys and projects that keep failing with 5xx are set aside (upstream/outliers.py)."""

    consecutive_failures: int = Field(default=5, ge=1)
    base_ejection_s: float = Field(default=30.0, gt=0)
    max_ejection_s: float = Field(default=300.0, gt=0)
    max_ejected_share: float = Field(default=0.5, gt=0, le=1)  # of keys, and of projects


class ServerConfig(_Strict):
    """The HTTP server's own limits against clients that hold connections without using them
    (slowloris). Defaults follow nginx: generous enough for any honest client on a slow link."""

    # A connection with no complete request for this long is closed: one that sends nothing,
    # only part of its headers, or idles between keep-alive requests. Above the 60 s idle
    # timeout of common load balancers, so they never reuse a connection gemgate just closed.
    idle_timeout_s: float = Field(default=75.0, gt=0)
    # The longest pause between two pieces of a request body (not a limit on the whole upload).
    body_idle_timeout_s: float = Field(default=60.0, gt=0)
    # The address clients reach gemgate at (https://gemini.example.com/prefix), used where
    # gemgate hands out its own URL (resumable uploads); otherwise taken from the request,
    # with X-Forwarded-Proto/-Host believed from trusted_proxies only.
    public_url: str | None = None
    # On SIGTERM: how long requests and streams in flight may take to finish before the
    # process exits anyway (the ledger is flushed either way).
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    # Serve HTTPS (and WSS) with this certificate chain and key (PEM files); both or neither.
    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: give both, or neither")
        for path in (self.tls_cert, self.tls_key):
            if path and not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return self

    @field_validator("public_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/") if url else None


class CorsConfig(_Strict):
    """Browsers may call gemgate from these origins (none by default: CORS off)."""

    allowed_origins: list[str] = Field(default_factory=list)  # "https://app.example.com", "*"
    max_age_s: int = Field(default=600, ge=0)  # how long a browser may cache a preflight


def _default_fallbacks() -> dict[str, list[str]]:
    return {"gemini-2.5-pro": ["gemini-2.5-flash", "gemini-2.5-flash-lite"],
            "gemini-2.5-flash": ["gemini-2.5-flash-lite"]}


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    path_prefix: str = ""  # serve under e.g. /gemini when behind a shared reverse proxy
    upstream_url: str = GOOGLE_URL
    projects: list[ProjectConfig] = Field(default_factory=list)
    tenants: list[TenantConfig] = Field(default_factory=list)
    admin_key: str | None = None
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    deadline_s: float = Field(default=60.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    hedging: HedgingConfig = Field(default_factory=HedgingConfig)
    quota_cooldown_s: float = Field(default=60.0, gt=0)  # when a 429 carries no RetryInfo
    probe_interval_s: float = Field(default=60.0, gt=0)
    probe_model: str = "gemini-2.5-flash-lite"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    stream_idle_timeout_s: float = Field(default=120.0, gt=0)
    log_requests: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    fallback: dict[str, list[str]] = Field(default_factory=_default_fallbacks)
    aliases: dict[str, str] = Field(default_factory=dict)  # e.g. {"fast": "gemini-2.5-flash-lite"}
    auto: AutoConfig = Field(default_factory=AutoConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    timezone: str = "UTC"  # of budget periods and of days in usage reports
    # Reverse proxies whose X-Forwarded-For is believed (for virtual keys' IP allowlists).
    trusted_proxies: list[str] = Field(default_factory=list)
    providers: list[ProviderConfig] = Field(default_factory=list)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    outliers: OutlierConfig = Field(default_factory=OutlierConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    cors: CorsConfig = Field(default_factory=CorsConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (e.g. UTC, Asia/Shanghai)") from None
        return zone

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(c.strip(), strict=False)) for c in cidrs]
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("upstream_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        prefix = prefix.strip().rstrip("/")
        return prefix if not prefix or prefix.startswith("/") else "/" + prefix

    @field_validator("admin_key")
    @classmethod
    def _admin(cls, key: str | None) -> str | None:
        return clean_key(key) if key else None

    @model_validator(mode="after")
    def _policies_named(self) -> Settings:
        known = set(self.guardrails.policies) | {"off"}
        named = [("guardrails.default", self.guardrails.default)] + [
            (f"tenants[{t.name}].guardrails", t.guardrails) for t in self.tenants]
        for where, name in named:
            if name is not None and name not in known:
                raise ValueError(f"{where}: no guardrails policy named {name!r} (known: "
                                 f"{', '.join(sorted(known))})")
        return self

    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
