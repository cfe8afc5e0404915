"""Who may use the admin routes: the admin key as a Bearer token (scripts, the CLI), or a
console session — the console's pages call these same routes from the browser, with the
session's cookie and, for every change, its CSRF token in `X-CSRF-Token`.

A guarded handler finds who asked in `request[ACTOR]` ("admin-api" or "console"): the audit
log says it. Complaints the stores raise become answers in Google's error shape."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from gemgate.console.sessions import COOKIE, Sessions
from gemgate.ledger import report as reports
from gemgate.ledger.search import SearchError
from gemgate.pipeline.inbound import BodyProblem
from gemgate.problems import ProblemId
from gemgate.problems import problem as problem_record
from gemgate.storage.sqlite.keys import KeyConflict, KeyInvalid, KeyNotFound
from gemgate.upstream.keyring import KeyringError

from .replies import gateway_error, json_reply, lang_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACTOR = web.RequestKey("actor", str)
_READS = ("GET", "HEAD")


class AdminGuard:
    def __init__(self, admin_key: str | None, sessions: Sessions | None,
                 has_store: bool) -> None:
        self.admin_key, self.sessions, self.has_store = admin_key, sessions, has_store

    def __call__(self, handler: Handler, needs_store: bool = False) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            lang = lang_of(request)
            actor = await self.actor(request)
            if actor is None:
                return json_reply(403, gateway_error(403, ProblemId.ADMIN_ONLY, lang))
            request[ACTOR] = actor
            if needs_store and not self.has_store:
                return json_reply(503, gateway_error(503, ProblemId.LEDGER_DISABLED, lang))
            try:
                return await handler(request)
            except KeyNotFound as exc:
                return json_reply(404, gateway_error(404, ProblemId.VKEY_NOT_FOUND, lang, str(exc)))
            except KeyConflict as exc:
                return json_reply(409, gateway_error(409, ProblemId.VKEY_CONFLICT, lang, str(exc)))
            except KeyringError as exc:
                status = problem_record(exc.problem).status or 400
                return json_reply(status, gateway_error(status, exc.problem, lang, str(exc)))
            except (KeyInvalid, reports.ReportError, SearchError) as exc:
                return json_reply(400, gateway_error(400, ProblemId.INVALID_REQUEST, lang,
                                                     str(exc)))
            except BodyProblem as exc:
                status = problem_record(exc.problem).status
                return json_reply(status, gateway_error(status, exc.problem, lang))

        return guarded

    async def actor(self, request: web.Request) -> str | None:
        if self._bearer(request):
            return "admin-api"
        if self.sessions is None:
            return None
        session = await self.sessions.find(request.cookies.get(COOKIE))
        if session is None:
            return None
        if request.method not in _READS and not hmac.compare_digest(
                request.headers.get("X-CSRF-Token", "").encode(), session.csrf.encode()):
            return None  # a change without the session's token: a forgery, or a stale page
        return "console"

    def _bearer(self, request: web.Request) -> bool:
        """`Authorization: Bearer <admin key>`, the scheme matched exactly (RFC 9110 makes it
        case-insensitive): `XBearer <key>` or a bare key is not the admin."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        given = given.strip()
        return bool(self.admin_key and scheme.lower() == "bearer" and given
                    and hmac.compare_digest(given.encode(), self.admin_key.encode()))
