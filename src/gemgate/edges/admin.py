"""The admin API (Bearer admin key): the pool's state, every key masked."""

from __future__ import annotations

import hmac

from aiohttp import web

from gemgate.upstream.pool import KeyPool

from .replies import gateway_error, json_reply, lang_of


class AdminEdge:
    def __init__(self, pool: KeyPool, admin_key: str | None) -> None:
        self.pool = pool
        self.admin_key = admin_key

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        return [web.get(f"{prefix}/admin/pool", self.pool_state)]

    def _refused(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "")[7:].strip()
        if self.admin_key and given and hmac.compare_digest(given.encode(),
                                                            self.admin_key.encode()):
            return None
        lang = lang_of(request)
        return json_reply(403, gateway_error(403, "ADMIN_ONLY", lang))

    async def pool_state(self, request: web.Request) -> web.Response:
        return self._refused(request) or json_reply(200, {"projects": self.pool.view()})
