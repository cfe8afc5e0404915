"""Builds the gateway: edges, stages and state, wired together; nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gemgate.access.alerts import Alerts
from gemgate.access.book import KeyBook
from gemgate.access.budgets import Budgets
from gemgate.access.counters import KeyCounters
from gemgate.access.rates import KeyRates
from gemgate.access.service import KeyService
from gemgate.backends import Backends
from gemgate.cache.semantic import GatewayEmbedder
from gemgate.cache.stage import ResponseCache
from gemgate.compat.remote_images import RemoteImages
from gemgate.config import Settings
from gemgate.config.view import effective
from gemgate.console.live import LiveFigures
from gemgate.console.pages import ConsoleEdge
from gemgate.console.sessions import Sessions
from gemgate.core.events import Events, Finished, PoolChanged, ProviderRested, Shared
from gemgate.edges.admin import AdminEdge
from gemgate.edges.cors import Cors
from gemgate.edges.gemini import GeminiEdge, unknown_route
from gemgate.edges.guard import AdminGuard
from gemgate.edges.intake import BodyReader
from gemgate.edges.live import LiveEdge
from gemgate.edges.live_tokens import TokenEdge
from gemgate.edges.openai import OpenAIEdge
from gemgate.edges.operator import OperatorEdge, QuotaReader
from gemgate.edges.ops import OpsEdge
from gemgate.edges.safety import google_shaped_failures
from gemgate.edges.uploads import UploadEdge
from gemgate.edges.wire import ClientAddress
from gemgate.ledger.prompts import PromptKeeper
from gemgate.live.seats import LiveSeats
from gemgate.live.tokens import EphemeralTokens
from gemgate.logs import access_log
from gemgate.metrics import Metrics, StateCollector
from gemgate.pipeline.access_log import write_line
from gemgate.pipeline.auth import Authenticator
from gemgate.pipeline.cache_storage import CacheStorageMeter
from gemgate.pipeline.flow import Pipeline
from gemgate.pipeline.google import QUOTA_ACTIONS, GoogleUpstream
from gemgate.pipeline.guardrails import Guardrails
from gemgate.pipeline.idempotency import Idempotency
from gemgate.pipeline.meter import Meter
from gemgate.pipeline.relay import Relay
from gemgate.pipeline.rights import Rights
from gemgate.pipeline.route import Router
from gemgate.prices import PriceBook
from gemgate.scheduling.limits import LimitBook, live_sessions
from gemgate.scheduling.scheduler import Scheduler
from gemgate.serving import IDLE_TIMEOUT_S, SHUTDOWN_GRACE_S
from gemgate.state import Limits
from gemgate.state.health import HealthState, LocalHealth
from gemgate.state.memory import MemoryRateState
from gemgate.state.redis.rates import RedisRateState
from gemgate.storage import Store
from gemgate.tls import TLS, server_context
from gemgate.tracing import Tracing
from gemgate.upstream.affinity import ResourceOwners
from gemgate.upstream.client import UpstreamClient
from gemgate.upstream.keyring import Keyring
from gemgate.upstream.pool import KeyPool
from gemgate.upstream.prober import Prober
from gemgate.upstream.providers import Providers

POOL = web.AppKey("pool", KeyPool)
STORE = web.AppKey("store", object)  # the storage backend (gemgate.storage.Store)
AUTH = web.AppKey("auth", Authenticator)
EVENTS = web.AppKey("events", Events)
TRACING = web.AppKey("tracing", Tracing)


def _scheduler(settings: Settings, pool: KeyPool, limits: LimitBook,
               backends: Backends) -> Scheduler | None:
    plan = settings.scheduling
    if not plan.enabled:
        return None
    state = backends.rate_state(plan.minute_s, plan.margin_s, plan.day_s, pool.clock)
    scheduler = Scheduler(state, limits, pool, frozenset(plan.spill))
    if isinstance(state, RedisRateState):
        state.on_room = scheduler.pump  # room freed on another replica
    return scheduler


def _meter(settings: Settings, store: Store | None, counters: KeyCounters,
           clock: Callable[[], float]) -> Meter:
    prices = PriceBook.configured(settings.prices)
    unbilled = frozenset() if settings.ledger.price_free_tier else frozenset(
        p.name for p in settings.projects if p.tier == "free")
    return Meter(store.ledger if store else None, prices, counters, unbilled,
                 settings.ledger.commit_timeout_s, clock)


def _told(events: Events, health: HealthState) -> Callable[[Shared], None]:
    """A change of health (a key, a project, a provider key, a learnt limit) goes to the events,
    and to the other replicas through `health`."""
    pending: set[asyncio.Future[None]] = set()
    shared = not isinstance(health, LocalHealth)

    def told(change: Shared) -> None:
        events.emit(None, change)
        if shared:
            task = asyncio.ensure_future(health.publish(change))
            pending.add(task)
            task.add_done_callback(pending.discard)

    return told


def _state_reader(pool: KeyPool, limits: LimitBook, scheduler: Scheduler | None,
                  budgets: Budgets, book: KeyBook, store: Store | None,
                  backends: Backends, seats: LiveSeats) -> tuple[Callable[[], dict[str, Any]],
                                               Callable[[], Awaitable[None]]]:
    """What the metrics read at scrape time (never on a request's way), and what must be
    fetched first (the shared quota windows, when they are in Redis)."""
    state = scheduler.state if scheduler is not None else None
    shared: dict[tuple[str, str, str], int] = {}
    sessions: dict[tuple[str, str, str], tuple[int, int]] = {}

    async def fetch() -> None:
        if isinstance(state, RedisRateState):
            shared.clear()
            shared.update(await state.in_use())
        sessions.clear()
        sessions.update(await seats.in_use([(p.name, p.tier) for p in pool.projects]))

    def read() -> dict[str, Any]:
        in_use = dict(shared)
        if isinstance(state, MemoryRateState):
            in_use = state.in_use()
        quota = {**_with_caps(in_use, limits), **sessions}
        ledger = store.ledger if store is not None else None
        return {"projects": pool.view(), "quota": quota,
                "budgets": budgets.used(book.keys()),
                "ledger_backlog": ledger.backlog() if ledger is not None else 0,
                "shared": backends.view()}

    return read, fetch


def _with_caps(in_use: dict[tuple[str, str, str], int],
               limits: LimitBook) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(project, model, window) → (used, limit), for windows that have a limit."""
    quota = {}
    for (project, model, window), used in in_use.items():
        cap = getattr(limits.of(project, model), window)
        if cap:
            quota[(project, model, window)] = (used, cap)
    return quota


def _quota_reader(limits: LimitBook, scheduler: Scheduler | None, pool: KeyPool,
                  seats: LiveSeats) -> QuotaReader:
    """The console's quota bars: each project's use of each model's windows now, and its
    open Live sessions against Google's limit for them."""
    state = scheduler.state if scheduler is not None else None

    async def quota() -> list[dict[str, Any]]:
        in_use: dict[tuple[str, str, str], int] = {}
        if isinstance(state, RedisRateState):
            in_use = await state.in_use()
        elif isinstance(state, MemoryRateState):
            in_use = state.in_use()
        rows = {**_with_caps(in_use, limits),
                **await seats.in_use([(p.name, p.tier) for p in pool.projects])}
        return [{"project": p, "model": m, "window": w, "used": used, "limit": cap}
                for (p, m, w), (used, cap) in sorted(rows.items())]

    return quota


def _live_sessions_of(settings: Settings) -> Callable[[str, str], int]:
    """How many Live sessions a project may hold at once: its configured `live_sessions`,
    else its tier's (a project added in the console has only its tier)."""
    configured = {p.name: p.live_sessions for p in settings.projects if p.live_sessions}

    def of(name: str, tier: str) -> int:
        return configured.get(name) or live_sessions(tier)
    return of


def build_app(settings: Settings, clock: Callable[[], float] = time.time,
              health: HealthState | None = None,
              monotonic: Callable[[], float] = time.monotonic) -> web.Application:
    """`clock` is the wall clock of the ledger and of budget periods (tests move it on);
    `health` shares key and project health with other replicas (none by default);
    `monotonic` orders cooldowns, rests and rate windows (tests pass the event loop's virtual
    time, so that scheduling lives through real minutes in milliseconds)."""
    backends = Backends(settings, health)
    health = backends.health
    pool = KeyPool(settings.projects, settings.quota_cooldown_s, settings.outliers,
                   clock=monotonic)
    limits = LimitBook({p.name: p.tier for p in settings.projects},
                       {p.name: {m: lim.model_dump() for m, lim in p.limits.items()}
                        for p in settings.projects})
    client = UpstreamClient(settings)
    router = Router(settings)
    scheduler = _scheduler(settings, pool, limits, backends)
    providers = Providers(settings.providers, client.session_for, settings.connect_timeout_s,
                          settings.stream_idle_timeout_s, monotonic)
    events = Events()
    pool.on_change = limits.on_learn = providers.on_change = _told(events, health)
    google = GoogleUpstream(pool, client, scheduler, limits, events)
    relay = Relay(google, settings.retry, router, settings.scheduling.fallback_after_s,
                  providers, events, hedging=settings.hedging)
    prober = Prober(pool, client, settings.probe_model, settings.probe_interval_s)

    store = backends.make_store(clock)
    alerts = Alerts(settings.budgets.webhook_url)
    budgets = Budgets(settings.timezone, settings.budgets.alert_at, alerts.send, clock)
    rates = KeyRates()
    book = KeyBook()
    keys = None if store is None else KeyService(store.keys, book, budgets, rates,
                                                 settings.ledger.key_refresh_s)
    owners = ResourceOwners(store.owners if store is not None else None)
    auth = Authenticator(settings.tenants, book, open_when_empty=settings.loopback_only())
    if settings.log_requests:
        events.subscribe(write_line, (Finished,))
    counters = backends.counters(rates, budgets)
    meter = _meter(settings, store, counters, clock)
    events.record_with(meter.on_finished)
    relay.counters = counters
    shared_windows = scheduler is not None and isinstance(scheduler.state, RedisRateState)
    rights = Rights(counters, budgets.zone, meter.prices, meter.outputs,
                    lambda call: shared_windows and call.action in QUOTA_ACTIONS)
    cache = None
    if settings.cache.mode != "off":
        semantic = settings.cache.semantic
        embedder = GatewayEmbedder(relay.forward, events, semantic.model, semantic.dimensions) \
            if semantic.enabled else None
        cache = ResponseCache(settings.cache, backends.cache_store(monotonic), meter.prices,
                              embedder, backends.vector_index() if semantic.enabled else None)
    seats = LiveSeats(backends.slots(monotonic), settings.live.max_sessions_per_tenant,
                      _live_sessions_of(settings))
    tracing = Tracing(settings.tracing, events) if settings.tracing.enabled else None
    metrics = Metrics(events, meter.cost, settings.metrics.max_tenants) \
        if settings.metrics.enabled else None
    if metrics is not None:
        read, fetch = _state_reader(pool, limits, scheduler, budgets, book, store, backends,
                                    seats)
        metrics.add_collector(StateCollector(read))
        metrics.before_scrape(fetch)
    flow = Pipeline(auth, router, rights, relay, owners, events, settings.deadline_s, cache,
                    Idempotency(backends.records_for("idempotency")),
                    CacheStorageMeter(backends.records_for("cache-storage"), clock),
                    Guardrails(settings.guardrails) if settings.guardrails.policies else None)
    bodies = BodyReader(settings.max_body_bytes, settings.server.body_idle_timeout_s)
    gemini = GeminiEdge(flow, bodies, ClientAddress(settings.trusted_proxies))
    images = RemoteImages(settings.openai.remote_images)
    openai = OpenAIEdge(flow, gemini, images, settings.aliases, providers)

    middlewares = [google_shaped_failures]
    cors = Cors(settings.cors) if settings.cors.allowed_origins else None
    if cors is not None:  # off by default, and then it costs nothing
        middlewares.append(cors.preflight)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    if cors is not None:
        app.on_response_prepare.append(cors.on_prepare)
    app[POOL] = pool
    app[AUTH] = auth
    app[EVENTS] = events
    app[IDLE_TIMEOUT_S] = settings.server.idle_timeout_s
    if settings.server.tls_cert and settings.server.tls_key:
        app[TLS] = server_context(settings.server.tls_cert, settings.server.tls_key)
    app[SHUTDOWN_GRACE_S] = settings.server.shutdown_grace_s
    if tracing is not None:
        app[TRACING] = tracing
    if store is not None:
        app[STORE] = store
    prefix = settings.path_prefix
    app.add_routes(OpsEdge(pool, backends.view, metrics, settings.metrics.token).routes())
    sessions = Sessions(backends.records_for("console"), settings.admin_key)
    guard = AdminGuard(settings.admin_key, sessions, store is not None)
    ledger = store.ledger if store else None
    keyring = Keyring(pool, limits, prober, store.keyring if store else None,
                      store.audit if store else None)
    live = LiveFigures(events)
    prompts = PromptKeeper(backends.records_for("prompts"), settings.ledger.prompt_retention_h,
                           events) if settings.ledger.keep_prompts else None
    quota = _quota_reader(limits, scheduler, pool, seats)
    app.add_routes(AdminEdge(pool, providers, backends.view, guard, keys, ledger,
                             settings.timezone, bodies, owners, cache,
                             store.audit if store else None).routes(prefix))
    app.add_routes(OperatorEdge(guard, pool, keyring, quota, ledger, settings, live, prompts,
                                bodies).routes(prefix))
    app.add_routes(ConsoleEdge(sessions, pool, ledger, settings.timezone,
                               cache.stats if cache is not None else lambda: None,
                               keys, keyring, quota, live, lambda: effective(settings),
                               prompts, settings.path_prefix).routes(prefix))
    addresses = ClientAddress(settings.trusted_proxies)
    tokens = EphemeralTokens(backends.records_for("live-tokens"),
                             settings.live.token_max_lifetime_s, clock)
    app.add_routes(TokenEdge(auth, tokens, addresses).routes(prefix))
    app.add_routes(LiveEdge(auth, pool, client, settings.upstream_url, events, meter.prices,
                            keys, counters, addresses, settings.live, seats, tokens)
                   .routes(prefix))
    app.add_routes(openai.routes(prefix))  # before Gemini's: /v1/models is both
    app.add_routes(gemini.routes(prefix))
    app.add_routes(UploadEdge(gemini, client, backends.records, prefix,
                              settings.server.public_url).routes())
    app.add_routes([unknown_route()])

    listening: list[asyncio.Task[None]] = []

    async def start(_: web.Application) -> None:
        def apply(change: Shared) -> None:  # another replica's news
            if isinstance(change, PoolChanged):
                pool.apply(change)
            elif isinstance(change, ProviderRested):
                providers.apply(change)
            else:
                limits.adopt(change.project, change.model,
                             Limits(change.rpm, change.tpm, change.rpd))

        await backends.start()
        loop = asyncio.get_running_loop()
        if metrics is not None:
            listening.append(loop.create_task(metrics.flush_regularly()))
        listening.append(loop.create_task(health.listen(apply)))
        state = scheduler.state if scheduler is not None else None
        if isinstance(state, RedisRateState):
            listening.append(loop.create_task(state.listen()))
        if store is not None and keys is not None:
            await store.open()
            await keys.refresh()
            keys.start()
        await owners.load()
        await keyring.load()
        if store is not None and settings.store.backend == "postgres":
            keyring.start(settings.ledger.key_refresh_s)  # replicas share the pool's changes
        prober.start()

    async def stop(_: web.Application) -> None:
        for task in listening:
            task.cancel()
        await prober.stop()
        await keyring.stop()
        await client.close()
        await images.close()
        if keys is not None and store is not None:
            await keys.stop()
            await store.close()
        await alerts.close()
        await backends.close()
        if tracing is not None:
            tracing.shutdown()
        writer = access_log()
        if writer is not None:
            writer.flush()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
