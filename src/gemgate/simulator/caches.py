"""Context caching (`cachedContents`): create, get, list, update the TTL, delete — each cache
owned by the project whose key made it, and gone when its expireTime passes. A generate call
that names another project's (or an unknown, or expired) cache gets Google's 403."""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from gemgate.google_errors import error_body
from gemgate.simulator import errors, validate
from gemgate.simulator.core import Simulator
from gemgate.simulator.server import VERSIONS, api_key, json_response
from gemgate.simulator.tokens import count_contents

MIN_TOKENS = 1024  # Google refuses smaller caches ("Cached content is too small")
_DEFAULT_TTL = timedelta(hours=1)
_TTL = re.compile(r"^(\d+(?:\.\d+)?)s$")


@dataclass
class _Cache:
    project: str
    described: dict[str, Any]
    expires: datetime


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expiry(body: dict[str, Any], now: datetime) -> datetime:
    ttl, expire = body.get("ttl"), body.get("expireTime") or body.get("expire_time")
    if isinstance(expire, str):
        try:
            return datetime.fromisoformat(expire.replace("Z", "+00:00"))
        except ValueError:
            raise validate.Invalid("Invalid value at 'cached_content.expire_time'",
                                   "cached_content.expire_time") from None
    if ttl is None:
        return now + _DEFAULT_TTL
    found = _TTL.match(str(ttl))
    if found is None:
        raise validate.Invalid("Invalid value at 'cached_content.ttl' (type.googleapis.com/"
                               "google.protobuf.Duration), Field 'ttl', Illegal duration "
                               f"format; duration must end with 's': {ttl}",
                               "cached_content.ttl")
    return now + timedelta(seconds=float(found.group(1)))


class CachesSurface:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._caches: dict[str, _Cache] = {}

    def routes(self) -> list[web.RouteDef]:
        base = f"/{{version:{VERSIONS}}}/cachedContents"
        return [web.post(base, self.create), web.get(base, self.list_caches),
                web.get(base + "/{id}", self.get), web.patch(base + "/{id}", self.update),
                web.delete(base + "/{id}", self.delete)]

    def owner_of(self, cache_id: str) -> str | None:
        found = self._live(cache_id)
        return found.project if found else None

    def _live(self, cache_id: str) -> _Cache | None:
        found = self._caches.get(cache_id)
        if found is not None and found.expires <= datetime.now(UTC):
            del self._caches[cache_id]
            return None
        return found

    async def create(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return json_response(*(denial or errors.missing_key()))
        now = datetime.now(UTC)
        try:
            body = validate.parse_json_object(await request.read())
            model = str(body.get("model") or "").removeprefix("models/")
            if model not in self.sim.models:
                raise validate.Invalid(f"Model models/{model} is not found.", "model")
            contents = body.get("contents")
            tokens = count_contents(contents if isinstance(contents, list) else [])
            if tokens < MIN_TOKENS:
                raise validate.Invalid(f"Cached content is too small. total_token_count="
                                       f"{tokens}, min_total_token_count={MIN_TOKENS}", "")
            expires = _expiry(body, now)
        except validate.Invalid as exc:
            self.sim.record(caller, "", "cachedContents.create", 400)
            return json_response(*errors.invalid_argument(exc.message, exc.field))
        cache_id = base64.b32encode(os.urandom(10)).decode().lower().rstrip("=")
        described = {"name": f"cachedContents/{cache_id}", "model": f"models/{model}",
                     "displayName": str(body.get("displayName") or ""),
                     "createTime": _stamp(now), "updateTime": _stamp(now),
                     "expireTime": _stamp(expires),
                     "usageMetadata": {"totalTokenCount": tokens}}
        self._caches[cache_id] = _Cache(caller.project.name, described, expires)
        self.sim.record(caller, model, "cachedContents.create", 200)
        return json_response(200, orjson.dumps(described))

    def _owned(self, request: web.Request) -> tuple[_Cache | None, web.Response | None]:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return None, json_response(*(denial or errors.missing_key()))
        found = self._live(request.match_info["id"])
        if found is None or found.project != caller.project.name:
            return None, json_response(403, error_body(
                403, "CachedContent not found (or permission denied)", "PERMISSION_DENIED"))
        return found, None

    async def get(self, request: web.Request) -> web.Response:
        found, refusal = self._owned(request)
        return refusal or json_response(200, orjson.dumps(found.described if found else {}))

    async def update(self, request: web.Request) -> web.Response:
        found, refusal = self._owned(request)
        if refusal or found is None:
            return refusal or json_response(500, b"{}")
        now = datetime.now(UTC)
        try:
            found.expires = _expiry(validate.parse_json_object(await request.read()), now)
        except validate.Invalid as exc:
            return json_response(*errors.invalid_argument(exc.message, exc.field))
        found.described.update(expireTime=_stamp(found.expires), updateTime=_stamp(now))
        return json_response(200, orjson.dumps(found.described))

    async def delete(self, request: web.Request) -> web.Response:
        _, refusal = self._owned(request)
        if refusal:
            return refusal
        del self._caches[request.match_info["id"]]
        return json_response(200, b"{}")

    async def list_caches(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return json_response(*(denial or errors.missing_key()))
        mine = [c.described for i, c in list(self._caches.items())
                if self._live(i) is not None and c.project == caller.project.name]
        return json_response(200, orjson.dumps({"cachedContents": mine} if mine else {}))
