"""Builds the gateway: edges, stages and state, wired together; nothing else."""

from __future__ import annotations

from aiohttp import web

from gemgate.config import Settings
from gemgate.edges.admin import AdminEdge
from gemgate.edges.gemini import GeminiEdge, unknown_route
from gemgate.edges.ops import OpsEdge
from gemgate.edges.safety import google_shaped_failures
from gemgate.edges.uploads import UploadEdge
from gemgate.logs import access_log
from gemgate.pipeline.auth import Authenticator
from gemgate.pipeline.relay import Relay
from gemgate.pipeline.route import Router
from gemgate.scheduling.limits import LimitBook
from gemgate.scheduling.scheduler import Scheduler
from gemgate.state.memory import MemoryRateState
from gemgate.upstream.affinity import ResourceOwners
from gemgate.upstream.client import UpstreamClient
from gemgate.upstream.pool import KeyPool
from gemgate.upstream.prober import Prober

POOL = web.AppKey("pool", KeyPool)


def _scheduler(settings: Settings, pool: KeyPool, limits: LimitBook) -> Scheduler | None:
    plan = settings.scheduling
    if not plan.enabled:
        return None
    state = MemoryRateState(plan.minute_s, plan.margin_s, plan.day_s)
    return Scheduler(state, limits, pool, frozenset(plan.spill))


def build_app(settings: Settings) -> web.Application:
    pool = KeyPool(settings.projects, settings.quota_cooldown_s)
    limits = LimitBook({p.name: p.tier for p in settings.projects},
                       {p.name: {m: lim.model_dump() for m, lim in p.limits.items()}
                        for p in settings.projects})
    client = UpstreamClient(settings)
    router = Router(settings)
    scheduler = _scheduler(settings, pool, limits)
    relay = Relay(pool, client, settings.retry, scheduler, limits, router,
                  settings.scheduling.fallback_after_s)
    prober = Prober(pool, client, settings.probe_model, settings.probe_interval_s)
    gemini = GeminiEdge(Authenticator(settings.tenants), router, relay, ResourceOwners(),
                        settings.deadline_s, settings.log_requests)

    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[google_shaped_failures])
    app[POOL] = pool
    prefix = settings.path_prefix
    app.add_routes(OpsEdge(pool).routes())
    app.add_routes(AdminEdge(pool, settings.admin_key).routes(prefix))
    app.add_routes(gemini.routes(prefix))
    app.add_routes(UploadEdge(gemini, client, prefix).routes())
    app.add_routes([unknown_route()])

    async def start(_: web.Application) -> None:
        prober.start()

    async def stop(_: web.Application) -> None:
        await prober.stop()
        await client.close()
        writer = access_log()
        if writer is not None:
            writer.flush()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
