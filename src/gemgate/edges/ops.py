"""Operations endpoints for load balancers and orchestrators.

`/healthz` is liveness: the process serves (restart it if this fails). `/readyz` is readiness:
at least one upstream key can serve some model; with every key disabled it answers 503 with
the reason and its fix, so a load balancer sends traffic to a replica that can use it and an
operator sees why — a gateway whose every key is dead is alive but not ready.
"""

from __future__ import annotations

from aiohttp import web

from gemgate import __version__
from gemgate.problems import hint
from gemgate.upstream.pool import KeyPool

from .replies import json_reply, lang_of


class OpsEdge:
    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz)]

    async def healthz(self, request: web.Request) -> web.Response:
        return json_reply(200, {"status": "ok", "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        counts = {"active": 0, "cooling": 0, "disabled": 0}
        for view in self.pool.view():
            counts[view["state"]] += 1
        why = self.pool.why_unusable()
        if why is None:
            return json_reply(200, {"status": "ready", "version": __version__,
                                    "projects": counts})
        reason, problem = why
        return json_reply(503, {"status": "unready", "version": __version__, "reason": reason,
                                "problem": problem, "projects": counts,
                                "hint": hint(problem, lang_of(request)) if problem else None})
