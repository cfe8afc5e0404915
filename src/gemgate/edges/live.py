"""The Live API (BidiGenerateContent over WebSocket) relayed: the SDKs' path quirks tolerated
(`//ws/…`, v1, v1beta and v1alpha, the Constrained variant), the client's token taken from
`x-goog-api-key`, `?key=`, `Authorization: Token|Bearer` or `?access_token=`.

A session's way: the client's token → its tenant (refused: close 1008 with the problem's hint);
its first frame, `setup`, names the model → the key's rights and budget (refused: 1008); a key
from the pool for that model → the upstream WebSocket, `setup` sent → `setupComplete` passed
back (an upstream that fails before it is set aside and another project tried; after it, the
session ends with the upstream's close code and reason). Then frames go both ways unchanged,
text or binary (`goAway`, resumption handles and all), one at a time each way — the socket's own
flow control is the back-pressure. Every `usageMetadata` from upstream adds to the session's
usage; a key with a budget is closed (1008, with the hint) once the session would pass it. When
the session ends, one ledger row records its tokens and cost (action `live`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from gemgate.access.counters import KeyCounters
from gemgate.access.service import KeyService
from gemgate.config import LiveConfig
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import Verdict
from gemgate.core.events import Events, Finished
from gemgate.edges.replies import new_request_id
from gemgate.edges.wire import ClientAddress
from gemgate.pipeline.auth import Authenticator
from gemgate.prices import PriceBook, Tokens
from gemgate.problems import ProblemId, language, problem
from gemgate.upstream.client import UpstreamClient
from gemgate.upstream.pool import KeyPool, Lease

log = logging.getLogger("gemgate.live")
_PATH = (r"/{lead:/*}ws/{service:google\.ai\.generativelanguage\.v1(?:beta|alpha)?\."
         r"GenerativeService\.BidiGenerateContent(?:Constrained)?}")
_SETUP_TIMEOUT_S = 30.0
_TRIES = 3


class LiveEdge:
    def __init__(self, auth: Authenticator, pool: KeyPool, client: UpstreamClient,
                 upstream_url: str, events: Events, prices: PriceBook,
                 keys: KeyService | None, counters: KeyCounters,
                 addresses: ClientAddress, limits: LiveConfig) -> None:
        self.auth, self.pool, self.client, self.events = auth, pool, client, events
        self.counters, self.limits = counters, limits
        self.open_by_tenant: Counter[str] = Counter()
        self.prices, self.keys, self.addresses = prices, keys, addresses
        self.upstream = upstream_url.rstrip("/").replace("https://", "wss://", 1).replace(
            "http://", "ws://", 1)
        self.open_sessions = 0

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        return [web.get(prefix + _PATH, self.session)]

    async def session(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, heartbeat=30)
        await client.prepare(request)
        call = Call(request_id=new_request_id(), method="WS", version="v1beta",
                    path=request.match_info["service"], query="", headers={}, body=b"",
                    action="live", lang=_lang(request))
        call.client_ip = self.addresses.of(request)
        call.tenant, refused = self.auth.authenticate(_token(request), call.client_ip)
        if refused is not None or call.tenant is None:
            await _close(client, 1008, refused or ProblemId.TOKEN_MISSING, call.lang)
            return client
        tenant = call.tenant.id
        if self.open_by_tenant[tenant] >= self.limits.max_sessions_per_tenant:
            await _close(client, 1008, ProblemId.LIVE_TOO_MANY_SESSIONS, call.lang)
            return client
        self.open_sessions += 1
        self.open_by_tenant[tenant] += 1
        try:
            await self._run(request, client, call)
        finally:
            self.open_sessions -= 1
            self.open_by_tenant[tenant] -= 1
        return client

    async def _run(self, request: web.Request, client: web.WebSocketResponse,
                   call: Call) -> None:
        first = await client.receive()
        setup = _json(first.data) if first.type in (WSMsgType.TEXT, WSMsgType.BINARY) else None
        if not isinstance(setup, dict) or not isinstance(setup.get("setup"), dict):
            await client.close(code=1007, message=b"the first message must be setup")
            return
        call.model = call.model_asked = str(setup["setup"].get("model") or "").removeprefix(
            "models/")
        refused = await self._rights(call)
        if refused is not None:
            await _close(client, 1008, refused, call.lang)
            return
        version = call.path.split(".")[3]  # google.ai.generativelanguage.<version>.…
        upstream, lease, answer = await self._open(call, version, first)
        if upstream is None or lease is None or answer is None:
            await _close(client, 1011, ProblemId.NO_HEALTHY_KEYS, call.lang)
            await self._record(call, 503, ProblemId.NO_HEALTHY_KEYS, {})
            return
        usage: dict[str, int] = {}
        ended: ProblemId | None = None
        try:
            ended = await self._pump(client, upstream, answer, call, usage)
        finally:
            self.pool.release(lease, Verdict(None, "none", False, False), call.model)
            with contextlib.suppress(Exception):
                await upstream.close()
            await self._record(call, 200, ended, usage)

    async def _rights(self, call: Call) -> ProblemId | None:
        key = call.tenant.key if call.tenant is not None else None
        if key is None:
            return None
        if call.model and not key.allows_model(call.model):
            return ProblemId.MODEL_NOT_ALLOWED
        if self.keys is not None and (key.spec.daily_budget_usd is not None
                                      or key.spec.monthly_budget_usd is not None):
            stop, call.budget_hold = await self.counters.reserve_budget(key, 0.0)
            if stop is not None:
                return ProblemId.BUDGET_EXCEEDED
        return None

    async def _open(self, call: Call, version: str, setup: aiohttp.WSMessage) -> tuple[
            aiohttp.ClientWebSocketResponse | None, Lease | None, aiohttp.WSMessage | None]:
        """The upstream socket, its setup answered: up to `_TRIES` projects."""
        avoid: set[str] = set()
        for _ in range(_TRIES):
            lease = self.pool.acquire(avoid, model=call.model)
            if lease is None:
                return None, None, None
            url = (f"{self.upstream}/ws/google.ai.generativelanguage.{version}."
                   "GenerativeService.BidiGenerateContent")
            started = asyncio.get_running_loop().time()
            try:
                upstream = await self.client.session_for(lease.project.proxy).ws_connect(
                    url, headers={"x-goog-api-key": lease.key.secret},
                    max_msg_size=16 * 1024 * 1024, timeout=aiohttp.ClientWSTimeout(
                        ws_close=10))
                await upstream.send_str(setup.data if isinstance(setup.data, str)
                                        else setup.data.decode())
                answer = await asyncio.wait_for(upstream.receive(), _SETUP_TIMEOUT_S)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("live: project %s could not open a session: %s",
                            lease.project.name, exc)
                self._attempt(call, lease, 0, ProblemId.UPSTREAM_UNREACHABLE, started)
                self.pool.release(lease, Verdict(ProblemId.UPSTREAM_UNREACHABLE, "none", True,
                                                 False), call.model)
                avoid.add(lease.project.name)
                continue
            payload = _json(answer.data) if answer.type in (WSMsgType.TEXT,
                                                            WSMsgType.BINARY) else None
            if isinstance(payload, dict) and "setupComplete" in payload:
                self._attempt(call, lease, 200, None, started)
                return upstream, lease, answer
            code, said = upstream.close_code or 0, str(answer.extra or "")
            verdict = _refusal(code, said)
            self._attempt(call, lease, code, verdict.problem, started)
            self.pool.release(lease, verdict, call.model)
            log.warning("live: project %s refused the setup: %s %s", lease.project.name,
                        code, said)
            await upstream.close()
            avoid.add(lease.project.name)
        return None, None, None

    def _attempt(self, call: Call, lease: Lease, status: int, found: ProblemId | None,
                 started: float) -> None:
        took = (asyncio.get_running_loop().time() - started) * 1000
        call.attempts.append(Attempt(lease.project.name, lease.key.masked, status, found, took))

    async def _pump(self, client: web.WebSocketResponse,
                    upstream: aiohttp.ClientWebSocketResponse, setup_complete: aiohttp.WSMessage,
                    call: Call, usage: dict[str, int]) -> ProblemId | None:
        """Frames both ways until either side ends; the problem that ended it, if any."""
        await _forward(client, setup_complete)
        ended: list[ProblemId] = []
        loop = asyncio.get_running_loop()
        started = last = loop.time()

        async def watch() -> None:  # idle and maximum duration
            nonlocal last
            while True:
                now = loop.time()
                idle_left = self.limits.idle_timeout_s - (now - last)
                life_left = self.limits.max_duration_s - (now - started)
                if idle_left <= 0 or life_left <= 0:
                    found = ProblemId.LIVE_IDLE if idle_left <= 0 else ProblemId.LIVE_TOO_LONG
                    ended.append(found)
                    await _close(client, 1001, found, call.lang)
                    return
                await asyncio.sleep(min(idle_left, life_left))

        async def down() -> None:  # upstream → client
            while True:
                frame = await upstream.receive()
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    nonlocal last
                    last = loop.time()
                    data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                    if b"usageMetadata" in data and self._spent(call, data, usage):
                        await _close(client, 1008, ProblemId.BUDGET_EXCEEDED, call.lang)
                        ended.append(ProblemId.BUDGET_EXCEEDED)
                        return
                    await _forward(client, frame)
                    continue
                # The upstream's close code and reason, passed on as they are.
                code = upstream.close_code or (frame.data if frame.type == WSMsgType.CLOSE
                                               else 1011) or 1000
                reason = str(frame.extra or "") if frame.type == WSMsgType.CLOSE else ""
                await client.close(code=code, message=reason.encode()[:123])
                return

        async def up() -> None:  # client → upstream
            nonlocal last
            while True:
                frame = await client.receive()
                last = loop.time()
                if frame.type == WSMsgType.TEXT:
                    await upstream.send_str(frame.data)
                elif frame.type == WSMsgType.BINARY:
                    await upstream.send_bytes(frame.data)
                else:
                    code = client.close_code or 1000
                    await upstream.close(code=code)
                    return

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up()),
                 asyncio.ensure_future(watch())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return ended[0] if ended else None

    def _spent(self, call: Call, data: bytes, usage: dict[str, int]) -> bool:
        """Adds a usageMetadata message to the session's usage; True once the session would
        pass its key's budget (what was spent before it, plus what it has used)."""
        message = _json(data)
        found = message.get("usageMetadata") if isinstance(message, dict) else None
        if not isinstance(found, dict):
            return False
        for name, total in (("promptTokenCount", "promptTokenCount"),
                            ("responseTokenCount", "candidatesTokenCount"),
                            ("totalTokenCount", "totalTokenCount")):
            if isinstance(found.get(name), int):
                usage[total] = usage.get(total, 0) + found[name]
        key = call.tenant.key if call.tenant is not None else None
        if key is None or self.keys is None or key.spec.daily_budget_usd is None:
            return False
        spent = self.keys.spent(key)["daily"] + self.prices.cost(call.model, Tokens.of(usage))
        return bool(spent >= key.spec.daily_budget_usd)

    async def _record(self, call: Call, status: int, found: ProblemId | None,
                      usage: dict[str, int]) -> None:
        await self.events.finished(call, Finished(status, found, usage or None))


def _refusal(code: int, said: str) -> Verdict:
    """What an upstream's close before setupComplete says of the key (its reason is Google's
    words: a bad key takes the key out of use, as on the HTTP surface)."""
    if "API key not valid" in said:
        return Verdict(ProblemId.API_KEY_INVALID, "disable_key", True, True, reason=said)
    return Verdict(ProblemId.UPSTREAM_UNREACHABLE, "none", True, True,
                   reason=f"closed {code}: {said}")


async def _forward(client: web.WebSocketResponse, frame: aiohttp.WSMessage) -> None:
    if frame.type == WSMsgType.TEXT:
        await client.send_str(frame.data)
    else:
        await client.send_bytes(frame.data)


async def _close(ws: web.WebSocketResponse, code: int, found: ProblemId, lang: str) -> None:
    """Closes with a reason the client can act on (a close reason holds 123 bytes)."""
    record = problem(found)
    reason = f"{found}: {record.message or record.hint(lang)}"
    await ws.close(code=code, message=reason.encode()[:123])


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return (request.headers.get("x-goog-api-key") or request.query.get("key")
            or request.query.get("access_token"))


def _lang(request: web.Request) -> str:
    return language(request.headers.get("Accept-Language"))


def _json(data: Any) -> Any:
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return None
