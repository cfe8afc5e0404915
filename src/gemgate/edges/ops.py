"""Operations endpoints: liveness for load balancers and orchestrators."""

from __future__ import annotations

from aiohttp import web

from gemgate import __version__
from gemgate.upstream.pool import KeyPool

from .replies import json_reply


class OpsEdge:
    def __init__(self, pool: KeyPool) -> None:
        self.pool = pool

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz)]

    async def healthz(self, request: web.Request) -> web.Response:
        views = self.pool.view()
        counts = {"active": 0, "cooling": 0, "disabled": 0}
        for view in views:
            counts[view["state"]] += 1
        return json_reply(200, {"status": "ok", "version": __version__, "projects": counts})
