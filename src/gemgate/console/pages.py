"""The console's pages: sign-in, overview, upstream — rendered on the server from the same
sources the admin API reads (the pool, the ledger's reports, the cache), every value escaped.

Every page answers with a strict Content-Security-Policy (only this origin's stylesheet; no
script, no frames), no-store caching, and no referrer. Without a session a page redirects to
sign-in; a change (sign-out) needs the session's CSRF token.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from gemgate.access.service import KeyService
from gemgate.access.store import KeyConflict, KeyInvalid, KeyNotFound
from gemgate.console.sessions import COOKIE, LIFETIME_S, Session, Sessions
from gemgate.ledger.report import GROUPS, MEASURES, Report, ReportError, parse_when, to_csv
from gemgate.problems import language
from gemgate.storage import LedgerStore
from gemgate.upstream.pool import KeyPool

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_STATIC = Path(__file__).parent / "static"
_WORDS = {
    "en": {"title": "gemgate console", "sign_in": "Sign in", "admin_key": "Admin key",
           "wrong_key": "That is not the admin key.", "overview": "Overview",
           "upstream": "Upstream", "sign_out": "Sign out", "projects": "Projects",
           "keys": "Keys", "active": "active", "cooling": "cooling", "disabled": "disabled",
           "today": "Today", "requests": "Requests", "errors": "Errors", "cost": "Cost (USD)",
           "tenant": "Tenant", "cache": "Cache", "hit_rate": "Hit rate", "project": "Project",
           "key": "Key", "state": "State", "reason": "Reason", "cooling_for": "Cooling (s)",
           "in_flight": "In flight", "no_ledger": "The ledger is switched off.",
           "language": "中文", "other_lang": "zh", "virtual_keys": "Virtual keys",
           "usage": "Usage", "name": "Name", "daily_budget": "Daily budget (USD)",
           "create": "Create", "revoke": "Revoke", "spent_today": "Spent today (USD)",
           "secret_once": "Copy this secret now: it is shown this once.",
           "group_by": "Group by", "since": "Since", "show": "Show", "csv": "Export CSV"},
    "zh": {"title": "gemgate 控制台", "sign_in": "登录", "admin_key": "管理员密钥",
           "wrong_key": "管理员密钥不正确。", "overview": "概览", "upstream": "上游",
           "sign_out": "退出", "projects": "项目", "keys": "密钥", "active": "可用",
           "cooling": "冷却中", "disabled": "已停用", "today": "今天", "requests": "请求数",
           "errors": "错误数", "cost": "费用（美元）", "tenant": "租户", "cache": "缓存",
           "hit_rate": "命中率", "project": "项目", "key": "密钥", "state": "状态",
           "reason": "原因", "cooling_for": "冷却剩余（秒）", "in_flight": "进行中",
           "no_ledger": "账本已关闭。", "language": "English", "other_lang": "en",
           "virtual_keys": "虚拟密钥", "usage": "用量", "name": "名称",
           "daily_budget": "每日预算（美元）", "create": "创建", "revoke": "吊销",
           "spent_today": "今日花费（美元）", "secret_once": "请立即复制此密钥：它只显示这一次。",
           "group_by": "分组", "since": "起始", "show": "查看", "csv": "导出 CSV"},
}
Page = Callable[[web.Request, Session], Awaitable[web.Response]]


class ConsoleEdge:
    def __init__(self, sessions: Sessions, pool: KeyPool, ledger: LedgerStore | None,
                 timezone: str, cache_stats: Callable[[], dict[str, Any] | None],
                 keys: KeyService | None = None) -> None:
        self.sessions, self.pool, self.ledger, self.keys = sessions, pool, ledger, keys
        self.zone, self.cache_stats = ZoneInfo(timezone), cache_stats
        self.templates = Environment(loader=PackageLoader("gemgate.console", "templates"),
                                     autoescape=select_autoescape(default=True))

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        base = f"{prefix}/console"
        self.base = base
        return [web.get(base, self.home), web.get(f"{base}/", self.home),
                web.get(f"{base}/login", self.login_form), web.post(f"{base}/login", self.login),
                web.post(f"{base}/logout", self._signed_in(self.logout, change=True)),
                web.get(f"{base}/overview", self._signed_in(self.overview)),
                web.get(f"{base}/upstream", self._signed_in(self.upstream)),
                web.get(f"{base}/keys", self._signed_in(self.virtual_keys)),
                web.post(f"{base}/keys", self._signed_in(self.create_key, change=True)),
                web.post(f"{base}/keys/revoke", self._signed_in(self.revoke_key, change=True)),
                web.get(f"{base}/usage", self._signed_in(self.usage)),
                web.get(f"{base}/usage.csv", self._signed_in(self.usage_csv)),
                web.get(f"{base}/static/console.css", self.stylesheet)]

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
        answer.set_cookie(COOKIE, session.id, max_age=int(LIFETIME_S), httponly=True,
                          samesite="Strict", secure=request.secure, path=self.base)
        return answer

    async def logout(self, request: web.Request, session: Session) -> web.Response:
        await self.sessions.close(session.id)
        answer = self._redirect(f"{self.base}/login")
        answer.del_cookie(COOKIE, path=self.base)
        return answer

    # ---- pages ----------------------------------------------------------------------------

    async def overview(self, request: web.Request, session: Session) -> web.Response:
        counts = {"active": 0, "cooling": 0, "disabled": 0}
        for project in self.pool.view():
            counts[project["state"]] += 1
        report = None
        if self.ledger is not None:
            midnight = datetime.now(self.zone).replace(hour=0, minute=0, second=0,
                                                       microsecond=0).timestamp()
            try:
                report = await self.ledger.report("tenant", midnight, time.time(),
                                                  str(self.zone))
            except ReportError:
                report = None
        return self._page(request, "overview.html", {
            "session": session, "projects": counts, "report": report,
            "cache": self.cache_stats()})

    async def upstream(self, request: web.Request, session: Session) -> web.Response:
        return self._page(request, "upstream.html", {"session": session,
                                                     "projects": self.pool.view()})

    async def virtual_keys(self, request: web.Request, session: Session,
                           made: tuple[Any, str] | None = None,
                           problem: str | None = None) -> web.Response:
        keys = []
        if self.keys is not None:
            keys = [(k, self.keys.spent(k)) for k in await self.keys.store.all(False)]
        return self._page(request, "keys.html", {"session": session, "keys": keys,
                                                 "made": made, "problem": problem,
                                                 "ledger": self.keys is not None})

    async def create_key(self, request: web.Request, session: Session) -> web.Response:
        if self.keys is None:
            return await self.virtual_keys(request, session)
        form = await request.post()
        spec: dict[str, Any] = {"name": str(form.get("name", "")).strip()}
        budget = str(form.get("daily_budget_usd", "")).strip()
        if budget:
            try:
                spec["daily_budget_usd"] = float(budget)
            except ValueError:
                return await self.virtual_keys(request, session,
                                               problem=f"daily budget: {budget!r}")
        try:
            made = await self.keys.change(self.keys.store.create(spec))
        except (KeyInvalid, KeyConflict) as exc:
            return await self.virtual_keys(request, session, problem=str(exc))
        return await self.virtual_keys(request, session, made=made)  # the secret, shown once

    async def revoke_key(self, request: web.Request, session: Session) -> web.Response:
        form = await request.post()
        if self.keys is not None:
            try:
                await self.keys.change(self.keys.store.revoke(str(form.get("id", ""))))
            except (KeyNotFound, KeyConflict) as exc:
                return await self.virtual_keys(request, session, problem=str(exc))
        return self._redirect(f"{self.base}/keys")

    async def _report(self, request: web.Request) -> Report | str:
        if self.ledger is None:
            return "ledger"
        by = request.query.get("by", "tenant")
        since = request.query.get("since", "1d")
        try:
            return await self.ledger.report(by, parse_when(since), None, str(self.zone))
        except ReportError as exc:
            return str(exc)

    async def usage(self, request: web.Request, session: Session) -> web.Response:
        report = await self._report(request)
        return self._page(request, "usage.html", {
            "session": session, "report": report if isinstance(report, Report) else None,
            "problem": report if isinstance(report, str) else None, "groups": GROUPS,
            "by": request.query.get("by", "tenant"), "since": request.query.get("since", "1d"),
            "measures": MEASURES})

    async def usage_csv(self, request: web.Request, session: Session) -> web.Response:
        report = await self._report(request)
        if not isinstance(report, Report):
            return self._page(request, "error.html", {"message": report}, status=400)
        return web.Response(text=to_csv(report), content_type="text/csv", headers={
            **_HEADERS, "Content-Disposition": 'attachment; filename="gemgate-usage.csv"'})

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=(_STATIC / "console.css").read_bytes(),
                            content_type="text/css", headers={"Cache-Control": "max-age=3600"})

    # ---- rendering ------------------------------------------------------------------------

    def _lang(self, request: web.Request) -> str:
        asked = request.query.get("lang") or request.cookies.get("gemgate_lang")
        if asked in _WORDS:
            return asked
        return language(request.headers.get("Accept-Language"))

    def _page(self, request: web.Request, name: str, values: dict[str, Any],
              status: int = 200) -> web.Response:
        lang = self._lang(request)
        body = self.templates.get_template(name).render(
            t=_WORDS[lang], lang=lang, base=self.base, path=request.path, **values)
        answer = web.Response(text=body, status=status, content_type="text/html",
                              headers=_HEADERS)
        if request.query.get("lang") in _WORDS:
            answer.set_cookie("gemgate_lang", lang, max_age=365 * 86400, samesite="Strict",
                              path=self.base)
        return answer

    def _redirect(self, to: str) -> web.Response:
        return web.Response(status=303, headers={**_HEADERS, "Location": to})
