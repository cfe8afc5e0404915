"""Operations endpoints for load balancers and orchestrators.

`/healthz` is liveness: the process serves (restart it if this fails). `/readyz` is readiness:
at least one upstream key can serve some model; with every key disabled it answers 503 with
the reason and its fix, so a load balancer sends traffic to a replica that can use it and an
operator sees why — a gateway whose every key is dead is alive but not ready.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gemgate import __version__
from gemgate.metrics import Metrics
from gemgate.problems import ProblemId, hint
from gemgate.upstream.pool import KeyPool

from .replies import gateway_error, json_reply, lang_of


class OpsEdge:
    def __init__(self, pool: KeyPool,
                 shared: Callable[[], list[dict[str, Any]]] = lambda: [],
                 metrics: Metrics | None = None, metrics_token: str | None = None) -> None:
        self.pool, self.shared = pool, shared
        self.metrics, self.metrics_token = metrics, metrics_token

    def routes(self) -> list[web.RouteDef]:
        routes = [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz)]
        if self.metrics is not None:
            routes.append(web.get("/metrics", self.scrape))
        return routes

    async def scrape(self, request: web.Request) -> web.Response:
        """Prometheus's scrape (its own bearer token when `metrics.token` is set)."""
        assert self.metrics is not None
        if self.metrics_token is not None:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.metrics_token}".encode()):
                return json_reply(403, gateway_error(403, ProblemId.ADMIN_ONLY,
                                                     lang_of(request),
                                                     "/metrics needs the metrics token."))
        await self.metrics.prepare()
        return web.Response(body=self.metrics.scrape(),
                            content_type="text/plain", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def healthz(self, request: web.Request) -> web.Response:
        return json_reply(200, {"status": "ok", "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        counts = {"active": 0, "cooling": 0, "disabled": 0}
        for view in self.pool.view():
            counts[view["state"]] += 1
        why = self.pool.why_unusable()
        shared = self.shared()
        if why is None:
            # A shared backend away is degraded, not unready: this replica serves on its own
            # state (limits divided among replicas), and pulling every replica out of the
            # load balancer would turn a Redis outage into a gateway outage.
            degraded = [part for part in shared if part["status"] != "ok"]
            return json_reply(200, {"status": "degraded" if degraded else "ready",
                                    "version": __version__, "projects": counts,
                                    **({"shared": shared} if shared else {})})
        reason, problem = why
        return json_reply(503, {"status": "unready", "version": __version__, "reason": reason,
                                "problem": problem, "projects": counts,
                                "hint": hint(problem, lang_of(request)) if problem else None})
