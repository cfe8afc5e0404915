"""The operator's admin routes, which the console's pages call too: changes to the upstream
pool (add keys with a tag — each checked on the spot —, remove, disable, enable, re-probe), the
audit log, the recent requests, the effective configuration and the live figures."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gemgate.config import Settings
from gemgate.config.view import effective
from gemgate.console.live import LiveFigures
from gemgate.ledger.guard_report import summarize
from gemgate.ledger.prompts import PromptKeeper
from gemgate.ledger.report import parse_when
from gemgate.ledger.search import RequestQuery
from gemgate.problems import ProblemId, problem
from gemgate.storage import LedgerStore
from gemgate.upstream.keyring import Keyring, KeyringError
from gemgate.upstream.pool import KeyPool

from .guard import ACTOR, AdminGuard
from .intake import BodyReader
from .replies import gateway_error, json_reply, lang_of

DAY_S = 86400.0
QuotaReader = Callable[[], Awaitable[list[dict[str, Any]]]]


class OperatorEdge:
    def __init__(self, guard: AdminGuard, pool: KeyPool, keyring: Keyring,
                 quota: QuotaReader, ledger: LedgerStore | None, settings: Settings,
                 live: LiveFigures, prompts: PromptKeeper | None, bodies: BodyReader) -> None:
        self.guard, self.pool, self.keyring, self.quota = guard, pool, keyring, quota
        self.ledger, self.settings, self.live, self.prompts = ledger, settings, live, prompts
        self.bodies = bodies

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        admin, guard = f"{prefix}/admin", self.guard
        keys = f"{admin}/upstream/keys"
        return [
            web.get(f"{admin}/upstream", guard(self.upstream)),
            web.post(keys, guard(self.add_keys)),
            web.delete(f"{keys}/{{id}}", guard(self.remove_key)),
            web.post(f"{keys}/{{id}}/disable", guard(self.disable_key)),
            web.post(f"{keys}/{{id}}/enable", guard(self.enable_key)),
            web.post(f"{keys}/{{id}}/probe", guard(self.probe_key)),
            web.post(f"{admin}/upstream/probe", guard(self.probe_all)),
            web.get(f"{admin}/audit", guard(self.audit)),
            web.get(f"{admin}/requests", guard(self.requests, True)),
            web.get(f"{admin}/guardrails", guard(self.guardrails, True)),
            web.get(f"{admin}/requests/{{id}}", guard(self.request, True)),
            web.get(f"{admin}/config", guard(self.config)),
            web.get(f"{admin}/live", guard(self.live_figures)),
        ]

    # ---- the upstream pool ------------------------------------------------------------------

    async def upstream(self, request: web.Request) -> web.Response:
        return json_reply(200, {"projects": self.pool.view(), "quota": await self.quota()})

    async def add_keys(self, request: web.Request) -> web.Response:
        """{"project": P, "tier": T, "tag": S, "keys": [...] or "one per line"}"""
        data = await self._object(request)
        pasted = data.get("keys", [])
        if isinstance(pasted, str):
            pasted = pasted.splitlines()
        if not isinstance(pasted, list) or not all(isinstance(k, str) for k in pasted):
            raise KeyringError("keys is a list of keys, or a text with one key per line")
        if len(pasted) > 1000:
            raise KeyringError("at most 1000 keys at a time")
        results = await self.keyring.add(str(data.get("project", "")),
                                         str(data.get("tier", "tier1")),
                                         str(data.get("tag", "")), pasted, request[ACTOR],
                                         lang_of(request))
        return json_reply(200, {"results": results})

    async def remove_key(self, request: web.Request) -> web.Response:
        return json_reply(200, await self.keyring.remove(request.match_info["id"],
                                                         request[ACTOR]))

    async def disable_key(self, request: web.Request) -> web.Response:
        return json_reply(200, await self.keyring.hold(request.match_info["id"],
                                                       request[ACTOR]))

    async def enable_key(self, request: web.Request) -> web.Response:
        return json_reply(200, await self.keyring.unhold(request.match_info["id"],
                                                         request[ACTOR]))

    async def probe_key(self, request: web.Request) -> web.Response:
        results = await self.keyring.probe(request.match_info["id"], request[ACTOR],
                                           lang_of(request))
        return json_reply(200, {"results": results})

    async def probe_all(self, request: web.Request) -> web.Response:
        return json_reply(200, {"results": await self.keyring.probe(None, request[ACTOR],
                                                                    lang_of(request))})

    async def audit(self, request: web.Request) -> web.Response:
        limit = _whole(request.query.get("limit"), 100, 1000)
        entries = await self.keyring.history(limit)
        return json_reply(200, {"entries": [e.view() for e in entries]})

    # ---- requests -----------------------------------------------------------------------------

    async def requests(self, request: web.Request) -> web.Response:
        """GET /admin/requests?id=&tenant=&status=4xx&problem=&page=2&limit=50 — the last
        day's (`since=7d` for more), newest first."""
        found, more = await self.search(dict(request.query), lang_of(request))
        return json_reply(200, {"requests": found, "more": more})

    async def search(self, query: dict[str, str], lang: str) -> tuple[list[dict[str, Any]], bool]:
        assert self.ledger is not None  # guarded: needs the store
        since = parse_when(query.get("since") or "1d")
        wanted = RequestQuery.of(query, since)
        rows = await self.ledger.search(wanted)
        for row in rows:
            row["hint"] = _hint(row.get("problem"), lang)
        return rows[:wanted.limit], len(rows) > wanted.limit

    async def guardrails(self, request: web.Request) -> web.Response:
        """GET /admin/guardrails?since=7d — what the guardrails found, per detector, rule and
        tenant (the last day's by default)."""
        assert self.ledger is not None  # guarded: needs the store
        since = parse_when(request.query.get("since") or "1d")
        return json_reply(200, summarize(await self.ledger.guarded(since)))

    async def request(self, request: web.Request) -> web.Response:
        lang = lang_of(request)
        found, _ = await self.search({"id": request.match_info["id"]}, lang)
        if not found:
            return json_reply(404, gateway_error(404, ProblemId.RESOURCE_NOT_FOUND, lang,
                                                 "no request with this id in the ledger"))
        row = found[0]
        row["prompt"] = await self.prompts.find(row["request_id"]) if self.prompts else None
        return json_reply(200, row)

    # ---- settings and live figures ------------------------------------------------------------

    async def config(self, request: web.Request) -> web.Response:
        return json_reply(200, effective(self.settings))

    async def live_figures(self, request: web.Request) -> web.Response:
        return json_reply(200, {"at": time.time(), **self.live.figures()})

    async def _object(self, request: web.Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await self.bodies.read(request) or b"{}")
        except orjson.JSONDecodeError:
            raise KeyringError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise KeyringError("the body must be a JSON object")
        return data


def _hint(found: str | None, lang: str) -> str | None:
    if not found or found not in ProblemId.__members__:
        return None
    return problem(ProblemId(found)).hint(lang)


def _whole(text: str | None, default: int, most: int) -> int:
    try:
        return max(1, min(most, int(text))) if text else default
    except ValueError:
        return default
