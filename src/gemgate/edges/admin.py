"""The admin API (Bearer admin key): the pool's state, virtual keys, usage reports.

Upstream keys appear masked; a virtual key's secret appears once, in the answer that created or
rotated it, and never again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from gemgate.access.service import KeyService
from gemgate.access.vkeys import VirtualKey
from gemgate.audit import AuditEntry, AuditStore
from gemgate.cache.stage import ResponseCache
from gemgate.ledger import report as reports
from gemgate.problems import ProblemId
from gemgate.storage import LedgerStore
from gemgate.storage.sqlite.keys import KeyInvalid
from gemgate.upstream.affinity import ResourceOwners
from gemgate.upstream.pool import KeyPool
from gemgate.upstream.providers import Providers

from .guard import ACTOR, AdminGuard
from .intake import BodyReader
from .replies import gateway_error, json_reply, lang_of


class AdminEdge:
    def __init__(self, pool: KeyPool, providers: Providers,
                 shared: Callable[[], list[dict[str, Any]]], guard: AdminGuard,
                 keys: KeyService | None, ledger: LedgerStore | None, timezone: str,
                 bodies: BodyReader, owners: ResourceOwners,
                 cache: ResponseCache | None = None, audit: AuditStore | None = None) -> None:
        self.pool, self.providers, self.guard, self.keys = pool, providers, guard, keys
        self.shared, self.cache, self.audit = shared, cache, audit
        self.ledger, self.timezone, self.bodies = ledger, timezone, bodies
        self.owners = owners

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        admin, guard = f"{prefix}/admin", self.guard
        return [
            web.get(f"{admin}/pool", guard(self.pool_state)),
            web.get(f"{admin}/resources", guard(self.resources)),
            web.get(f"{admin}/cache", guard(self.cache_stats)),
            web.delete(f"{admin}/cache", guard(self.cache_purge)),
            web.get(f"{admin}/vkeys", guard(self.list_keys, True)),
            web.post(f"{admin}/vkeys", guard(self.create_key, True)),
            web.get(f"{admin}/vkeys/{{ref}}", guard(self.get_key, True)),
            web.patch(f"{admin}/vkeys/{{ref}}", guard(self.update_key, True)),
            web.delete(f"{admin}/vkeys/{{ref}}", guard(self.revoke_key, True)),
            web.post(f"{admin}/vkeys/{{ref}}/rotate", guard(self.rotate_key, True)),
            web.post(f"{admin}/vkeys/{{ref}}/revoke", guard(self.revoke_key, True)),
            web.get(f"{admin}/usage", guard(self.usage, True)),
        ]

    async def pool_state(self, request: web.Request) -> web.Response:
        return json_reply(200, {"projects": self.pool.view(),
                                "providers": self.providers.view(), "shared": self.shared()})

    async def resources(self, request: web.Request) -> web.Response:
        """Every file, cache, batch, … created through gemgate, with its owner: the admin
        sees across tenants."""
        return json_reply(200, {"resources": self.owners.view()})

    async def cache_stats(self, request: web.Request) -> web.Response:
        if self.cache is None:
            return json_reply(200, {"mode": "off"})
        return json_reply(200, {"mode": self.cache.config.mode, **self.cache.stats()})

    async def cache_purge(self, request: web.Request) -> web.Response:
        """Drops entries: `?tenant=NAME`, `?key=VKEY_ID` or `?namespace=NS`, and/or
        `?model=M`; everything with none."""
        query = request.query
        scopes = [f"{kind}:{query[name]}" for name, kind in
                  (("tenant", "tenant"), ("key", "vkey"), ("namespace", "ns")) if name in query]
        if len(scopes) > 1:
            return json_reply(400, gateway_error(400, ProblemId.INVALID_REQUEST, lang_of(request),
                                                 "Name one of tenant, key or namespace."))
        purged = 0 if self.cache is None else await self.cache.store.purge(
            scopes[0] if scopes else None, query.get("model"))
        await self._audit(request, "cache.purge", scopes[0] if scopes else "everything",
                          f"{purged} entries")
        return json_reply(200, {"purged": purged})

    @property
    def _keys(self) -> KeyService:
        assert self.keys is not None  # routes that use it are guarded by `needs_ledger`
        return self.keys

    def _view(self, key: VirtualKey, secret: str | None = None) -> dict[str, Any]:
        view = key.view()
        if self.keys is not None and key.revoked_at is None:
            view["spent_usd"] = self.keys.spent(key)
        if secret is not None:
            view["secret"] = secret  # shown this once; only its digest is kept
        return view

    async def list_keys(self, request: web.Request) -> web.Response:
        keys = self._keys
        include_revoked = request.query.get("revoked", "").lower() in ("1", "true", "yes")
        found = await keys.store.all(include_revoked)
        return json_reply(200, {"keys": [self._view(k) for k in found]})

    async def get_key(self, request: web.Request) -> web.Response:
        keys = self._keys
        ref = request.match_info["ref"]
        return json_reply(200, self._view(await keys.store.get(ref)))

    async def create_key(self, request: web.Request) -> web.Response:
        keys = self._keys
        data = await self._json_object(request)
        key, secret = await keys.change(keys.store.create(data))
        await self._audit(request, "vkey.create", key.id, key.name)
        return json_reply(201, self._view(key, secret))

    async def update_key(self, request: web.Request) -> web.Response:
        keys = self._keys
        ref, patch = request.match_info["ref"], await self._json_object(request)
        key = await keys.change(keys.store.update(ref, patch))
        await self._audit(request, "vkey.update", key.id, ", ".join(sorted(patch)))
        return json_reply(200, self._view(key))

    async def rotate_key(self, request: web.Request) -> web.Response:
        keys = self._keys
        ref = request.match_info["ref"]
        key, secret = await keys.change(keys.store.rotate(ref))
        await self._audit(request, "vkey.rotate", key.id, key.name)
        return json_reply(200, self._view(key, secret))

    async def revoke_key(self, request: web.Request) -> web.Response:
        keys = self._keys
        ref = request.match_info["ref"]
        key = await keys.change(keys.store.revoke(ref))
        await self._audit(request, "vkey.revoke", key.id, key.name)
        return json_reply(200, self._view(key))

    async def usage(self, request: web.Request) -> web.Response:
        """GET /admin/usage?by=tenant&since=7d[&until=…][&tenant=…][&format=csv]"""
        assert self.ledger is not None
        query = request.query
        since = reports.parse_when(query.get("since", "7d"))
        until = reports.parse_when(query["until"]) if "until" in query else None
        filters = {name: query.get(name) for name in ("tenant", "key", "model", "project",
                                                       "provider")}
        report = await self.ledger.report(query.get("by", "tenant"), since, until,
                                          self.timezone, **filters)
        if query.get("format") == "csv":
            return web.Response(text=reports.to_csv(report), content_type="text/csv")
        return json_reply(200, report.as_dict())

    async def _json_object(self, request: web.Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await self.bodies.read(request) or b"{}")
        except orjson.JSONDecodeError:
            raise KeyInvalid(["the body is not valid JSON"]) from None
        if not isinstance(data, dict):
            raise KeyInvalid(["the body must be a JSON object"])
        return data


    async def _audit(self, request: web.Request, action: str, target: str,
                     detail: str) -> None:
        if self.audit is not None:
            await self.audit.write(AuditEntry(time.time(), request[ACTOR], action, target,
                                              detail).scrubbed())
