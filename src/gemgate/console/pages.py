"""The console's pages: rendered on the server from the same sources the admin API reads (the
pool, the ledger's reports, the cache), every value escaped. Every change a page offers is a
call to the admin API from static/console.js, with the session's CSRF token (edges/guard.py):
the console can do nothing a script with the admin key cannot.

Every page answers with a strict Content-Security-Policy (this origin's stylesheet and script;
no inline script, no frames), no-store caching, and no referrer. Without a session a page
redirects to sign-in; sign-out needs the session's CSRF token.

A page load costs a bounded number of requests: the page, its stylesheet and its script
(cached for an hour), and on the Overview one small JSON call every 5 s while the tab shows.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from gemgate.access.service import KeyService
from gemgate.console.live import LiveFigures
from gemgate.console.sessions import COOKIE, LIFETIME_S, Session, Sessions
from gemgate.console.words import WORDS
from gemgate.ledger.prompts import PromptKeeper
from gemgate.ledger.report import (
    GROUPS,
    MEASURES,
    Report,
    ReportError,
    parse_when,
    to_csv,
)
from gemgate.ledger.search import RequestQuery, SearchError
from gemgate.problems import ProblemId, language, problem
from gemgate.storage import LedgerStore
from gemgate.upstream.keyring import TIERS, Keyring
from gemgate.upstream.pool import KeyPool

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_STATIC = Path(__file__).parent / "static"
_ASSETS = {"console.css": "text/css", "console.js": "text/javascript"}
_PAGE_ROWS = 50
Page = Callable[[web.Request, Session], Awaitable[web.Response]]
QuotaReader = Callable[[], Awaitable[list[dict[str, Any]]]]


class ConsoleEdge:
    def __init__(self, sessions: Sessions, pool: KeyPool, ledger: LedgerStore | None,
                 timezone: str, cache_stats: Callable[[], dict[str, Any] | None],
                 keys: KeyService | None, keyring: Keyring, quota: QuotaReader,
                 live: LiveFigures, config: Callable[[], dict[str, Any]],
                 prompts: PromptKeeper | None, prefix: str = "") -> None:
        self.sessions, self.pool, self.ledger, self.keys = sessions, pool, ledger, keys
        self.zone, self.cache_stats = ZoneInfo(timezone), cache_stats
        self.keyring, self.quota, self.live, self.config = keyring, quota, live, config
        self.prompts, self.admin = prompts, f"{prefix}/admin"
        self.base = f"{prefix}/console"
        self._yesterday: tuple[float, Report | None] = (0.0, None)  # fixed once it is over
        self._settings_yaml: str | None = None  # the configuration does not change running
        self.templates = Environment(loader=PackageLoader("gemgate.console", "templates"),
                                     autoescape=select_autoescape(default=True))

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        base, signed_in = self.base, self._signed_in
        return [web.get(base, self.home), web.get(f"{base}/", self.home),
                web.get(f"{base}/login", self.login_form), web.post(f"{base}/login", self.login),
                web.post(f"{base}/logout", signed_in(self.logout, change=True)),
                web.get(f"{base}/overview", signed_in(self.overview)),
                web.get(f"{base}/upstream", signed_in(self.upstream)),
                web.get(f"{base}/keys", signed_in(self.virtual_keys)),
                web.get(f"{base}/usage", signed_in(self.usage)),
                web.get(f"{base}/usage.csv", signed_in(self.usage_csv)),
                web.get(f"{base}/requests", signed_in(self.requests)),
                web.get(f"{base}/requests/{{id}}", signed_in(self.request_detail)),
                web.get(f"{base}/settings", signed_in(self.settings)),
                web.get(f"{base}/static/{{name}}", self.asset)]

    # ---- sessions -------------------------------------------------------------------------

    def _signed_in(self, page: Page, change: bool = False) -> Callable[
            [web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            session = await self.sessions.find(request.cookies.get(COOKIE))
            if session is None:
                return self._redirect(f"{self.base}/login")
            if change:
                form = await request.post()
                if str(form.get("csrf", "")) != session.csrf:
                    return self._page(request, "error.html", {"message": "CSRF"}, status=403)
            return await page(request, session)

        return guarded

    async def home(self, request: web.Request) -> web.Response:
        return self._redirect(f"{self.base}/overview")

    async def login_form(self, request: web.Request) -> web.Response:
        return self._page(request, "login.html", {"failed": False})

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not self.sessions.admits(str(form.get("key", ""))):
            return self._page(request, "login.html", {"failed": True}, status=403)
        session = await self.sessions.open()
        answer = self._redirect(f"{self.base}/overview")
        # The whole prefix: the console's script calls the admin routes with this cookie.
        answer.set_cookie(COOKIE, session.id, max_age=int(LIFETIME_S), httponly=True,
                          samesite="Strict", secure=request.secure, path=self._cookie_path)
        return answer

    @property
    def _cookie_path(self) -> str:
        return self.base.removesuffix("/console") or "/"

    async def logout(self, request: web.Request, session: Session) -> web.Response:
        await self.sessions.close(session.id)
        answer = self._redirect(f"{self.base}/login")
        answer.del_cookie(COOKIE, path=self._cookie_path)
        return answer

    # ---- pages ----------------------------------------------------------------------------

    async def overview(self, request: web.Request, session: Session) -> web.Response:
        counts = {"active": 0, "cooling": 0, "disabled": 0}
        for project in self.pool.view():
            counts[project["state"]] += 1
        today = yesterday = None
        if self.ledger is not None:
            midnight = datetime.now(self.zone).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
            try:
                today = await self.ledger.report("tenant", midnight.timestamp(), time.time(),
                                                 str(self.zone))
                yesterday = await self._day_before(midnight)
            except ReportError:
                today = yesterday = None
        return self._page(request, "overview.html", {
            "session": session, "projects": counts, "report": today, "yesterday": yesterday,
            "cache": self.cache_stats(), "live": self.live.figures()})

    async def _day_before(self, midnight: datetime) -> Report | None:
        """Yesterday's report: it no longer changes, so it is computed once a day."""
        kept_for, kept = self._yesterday
        if kept_for != midnight.timestamp() and self.ledger is not None:
            before = (midnight - timedelta(days=1)).timestamp()
            kept = await self.ledger.report("tenant", before, midnight.timestamp(),
                                            str(self.zone))
            self._yesterday = (midnight.timestamp(), kept)
        return kept

    async def upstream(self, request: web.Request, session: Session) -> web.Response:
        quota: dict[str, list[dict[str, Any]]] = {}
        for row in await self.quota():
            quota.setdefault(row["project"], []).append(row)
        return self._page(request, "upstream.html", {
            "session": session, "projects": self.pool.view(), "quota": quota, "tiers": TIERS,
            "audit": await self.keyring.history(20), "hint": _hint, "when": self._when})

    async def virtual_keys(self, request: web.Request, session: Session) -> web.Response:
        keys = []
        if self.keys is not None:
            keys = [(k, self.keys.spent(k)) for k in await self.keys.store.all(False)]
        policies = [*self.config().get("guardrails", {}).get("policies", {}), "off"]
        return self._page(request, "keys.html", {"session": session, "keys": keys,
                                                 "policies": policies,
                                                 "ledger": self.keys is not None})

    async def _report(self, request: web.Request) -> Report | str:
        if self.ledger is None:
            return "ledger"
        query = request.query
        try:
            until = parse_when(query["until"]) if query.get("until") else None
            return await self.ledger.report(query.get("by", "tenant"),
                                            parse_when(query.get("since") or "1d"), until,
                                            str(self.zone))
        except ReportError as exc:
            return str(exc)

    async def usage(self, request: web.Request, session: Session) -> web.Response:
        report = await self._report(request)
        page = _page_number(request)
        rows = report.rows if isinstance(report, Report) else []
        shown = rows[(page - 1) * _PAGE_ROWS: page * _PAGE_ROWS]
        top = max((r["cost_usd"] for r in shown), default=0.0) or 1.0
        return self._page(request, "usage.html", {
            "session": session, "report": report if isinstance(report, Report) else None,
            "rows": shown, "top": top, "page": page,
            "more": len(rows) > page * _PAGE_ROWS,
            "problem": report if isinstance(report, str) else None, "groups": GROUPS,
            "by": request.query.get("by", "tenant"), "since": request.query.get("since", "1d"),
            "until": request.query.get("until", ""), "measures": MEASURES})

    async def usage_csv(self, request: web.Request, session: Session) -> web.Response:
        report = await self._report(request)
        if not isinstance(report, Report):
            return self._page(request, "error.html", {"message": report}, status=400)
        return web.Response(text=to_csv(report), content_type="text/csv", headers={
            **_HEADERS, "Content-Disposition": 'attachment; filename="gemgate-usage.csv"'})

    async def requests(self, request: web.Request, session: Session) -> web.Response:
        found: list[dict[str, Any]] = []
        more, complaint = False, None
        page = _page_number(request)
        if self.ledger is not None:
            query = {**request.query, "page": str(page), "limit": str(_PAGE_ROWS)}
            try:
                wanted = RequestQuery.of(query, parse_when(request.query.get("since") or "1d"))
                rows = await self.ledger.search(wanted)
                found, more = rows[:wanted.limit], len(rows) > wanted.limit
            except (SearchError, ReportError) as exc:
                complaint = str(exc)
        return self._page(request, "requests.html", {
            "session": session, "found": found, "more": more, "page": page,
            "problem": complaint, "ledger": self.ledger is not None, "q": request.query,
            "hint": _hint, "when": self._when, "problems": sorted(ProblemId)})

    async def request_detail(self, request: web.Request, session: Session) -> web.Response:
        row, prompt = None, None
        if self.ledger is not None:
            rows = await self.ledger.search(RequestQuery(request_id=request.match_info["id"],
                                                         limit=1))
            row = rows[0] if rows else None
        if row is not None and self.prompts is not None:
            prompt = await self.prompts.find(row["request_id"])
        return self._page(request, "request.html", {
            "session": session, "row": row, "prompt": prompt,
            "keeping": self.prompts is not None, "hint": _hint, "when": self._when},
            status=200 if row is not None else 404)

    async def settings(self, request: web.Request, session: Session) -> web.Response:
        if self._settings_yaml is None:
            self._settings_yaml = yaml.safe_dump(self.config(), allow_unicode=True,
                                                 sort_keys=False)
        shown = self._settings_yaml
        return self._page(request, "settings.html", {"session": session, "shown": shown})

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=(_STATIC / name).read_bytes(), content_type=_ASSETS[name],
                            headers={"Cache-Control": "max-age=3600",
                                     "X-Content-Type-Options": "nosniff"})

    # ---- rendering ------------------------------------------------------------------------

    def _when(self, ts: float | None) -> str:
        if ts is None:
            return ""
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M:%S")

    def _lang(self, request: web.Request) -> str:
        asked = request.query.get("lang") or request.cookies.get("gemgate_lang")
        if asked in WORDS:
            return asked
        return language(request.headers.get("Accept-Language"))

    def _page(self, request: web.Request, name: str, values: dict[str, Any],
              status: int = 200) -> web.Response:
        lang = self._lang(request)
        body = self.templates.get_template(name).render(
            t=WORDS[lang], lang=lang, base=self.base, admin=self.admin, path=request.path,
            **values)
        answer = web.Response(text=body, status=status, content_type="text/html",
                              headers=_HEADERS)
        if request.query.get("lang") in WORDS:
            answer.set_cookie("gemgate_lang", lang, max_age=365 * 86400, samesite="Strict",
                              path=self.base)
        return answer

    def _redirect(self, to: str) -> web.Response:
        return web.Response(status=303, headers={**_HEADERS, "Location": to})


def _hint(found: str | None, lang: str) -> str:
    if not found or found not in ProblemId.__members__:
        return ""
    return problem(ProblemId(found)).hint(lang)


def _page_number(request: web.Request) -> int:
    try:
        return max(1, int(request.query.get("page") or 1))
    except ValueError:
        return 1
