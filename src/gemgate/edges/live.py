"""The Live API (BidiGenerateContent over WebSocket) relayed: the SDKs' path quirks tolerated
(`//ws/…`, v1, v1beta and v1alpha, the Constrained variant), the client's token taken from
`x-goog-api-key`, `?key=`, `Authorization: Token|Bearer` or `?access_token=` — a gemgate token,
or an ephemeral `auth_tokens/…` token gemgate minted (live/tokens.py).

A session's way: the token → its tenant (refused: close 1008 with the problem's hint) and a seat
in the tenant's scope (live/seats.py; every replica's sessions count); its first frame, `setup`,
locked by an ephemeral token's constraints, names the model → the key's rights and budget
(refused: 1008); a key from the pool for that model, in a project with a free Live seat → the
upstream WebSocket, `setup` sent → `setupComplete` passed back (an upstream that fails before it
is set aside and another project tried; after it, the session ends with the upstream's close
code and reason). Then frames go both ways unchanged, text or binary (`goAway`, resumption
handles and all), one at a time each way — each socket's own flow control is the back-pressure.
Every `usageMetadata` from upstream adds to the session's usage (by modality too); the session
is closed (1008, with the hint) once it would pass its key's daily or monthly budget, and every
`live.check_every_s` its rights are read again (a key revoked or disabled since, a budget spent
by the tenant's other calls) while its seats' leases are renewed. When it ends, one ledger row
records its tokens and cost (action `live`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from gemgate.access.counters import KeyCounters
from gemgate.access.service import KeyService
from gemgate.config import LiveConfig
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import Verdict
from gemgate.core.events import Events, Finished, LiveReport
from gemgate.edges.replies import new_request_id
from gemgate.edges.wire import ClientAddress
from gemgate.live.seats import LiveSeats, project_scope, tenant_scope
from gemgate.live.session import Session, SessionRights, json_or_none
from gemgate.live.tokens import PREFIX, EphemeralTokens
from gemgate.pipeline.auth import Authenticator
from gemgate.prices import PriceBook
from gemgate.problems import ProblemId, language, problem
from gemgate.upstream.client import UpstreamClient
from gemgate.upstream.pool import KeyPool, Lease

log = logging.getLogger("gemgate.live")
_PATH = (r"/{lead:/*}ws/{service:google\.ai\.generativelanguage\.v1(?:beta|alpha)?\."
         r"GenerativeService\.BidiGenerateContent(?:Constrained)?}")
_SETUP_TIMEOUT_S = 30.0
_TRIES = 3
_NEUTRAL = Verdict(None, "none", False, False)


class LiveEdge:
    def __init__(self, auth: Authenticator, pool: KeyPool, client: UpstreamClient,
                 upstream_url: str, events: Events, prices: PriceBook,
                 keys: KeyService | None, counters: KeyCounters, addresses: ClientAddress,
                 limits: LiveConfig, seats: LiveSeats, tokens: EphemeralTokens) -> None:
        self.auth, self.pool, self.client, self.events = auth, pool, client, events
        self.counters, self.limits, self.seats, self.tokens = counters, limits, seats, tokens
        self.keys, self.addresses = keys, addresses
        self.rights = SessionRights(auth, keys, prices)
        self.upstream = upstream_url.rstrip("/").replace("https://", "wss://", 1).replace(
            "http://", "ws://", 1)
        self.open_sessions = 0  # in this process

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        return [web.get(prefix + _PATH, self.session)]

    async def session(self, request: web.Request) -> web.WebSocketResponse:
        client = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024, heartbeat=30)
        await client.prepare(request)
        call = Call(request_id=new_request_id(), method="WS", version="v1beta",
                    path=request.match_info["service"], query="", headers={}, body=b"",
                    action="live", lang=_lang(request))
        call.client_ip = self.addresses.of(request)
        live = Session(call, _token(request))
        refused = await self._admit(live)
        if refused is not None:
            await _close(client, 1008, refused, call.lang)
            return client
        self.open_sessions += 1
        try:
            await self._run(client, live)
        finally:
            self.open_sessions -= 1
            await self.seats.free(live.seats, call.request_id)
        return client

    async def _admit(self, live: Session) -> ProblemId | None:
        """The session's tenant and its seat in the tenant's scope, or why not."""
        call = live.call
        if live.token is not None and live.token.startswith(PREFIX):
            live.grant, refused = await self.tokens.redeem(live.token)
            if live.grant is None:
                return refused
            call.tenant, refused = self.auth.tenant_by_id(live.grant.tenant_id, call.client_ip)
        else:
            call.tenant, refused = self.auth.authenticate(live.token, call.client_ip)
        if refused is not None or call.tenant is None:
            return refused or ProblemId.TOKEN_MISSING
        if not await self.seats.take_tenant(call.tenant.id, call.request_id):
            return ProblemId.LIVE_TOO_MANY_SESSIONS
        live.seats.append(tenant_scope(call.tenant.id))
        return None

    async def _run(self, client: web.WebSocketResponse, live: Session) -> None:
        call = live.call
        first = await client.receive()
        message = json_or_none(first.data) if first.type in (WSMsgType.TEXT,
                                                             WSMsgType.BINARY) else None
        if not isinstance(message, dict) or not isinstance(message.get("setup"), dict):
            await client.close(code=1007, message=b"the first message must be setup")
            return
        setup = message["setup"] if live.grant is None else live.grant.constrain(
            message["setup"])
        call.model = call.model_asked = str(setup.get("model") or "").removeprefix("models/")
        refused = await self._rights(call)
        if refused is not None:
            await _close(client, 1008, refused, call.lang)
            return
        version = call.path.split(".")[3]  # google.ai.generativelanguage.<version>.…
        sent = orjson.dumps({"setup": setup}) if live.grant is not None else (
            first.data if isinstance(first.data, bytes) else first.data.encode())
        upstream, lease, answer, found = await self._open(live, version, sent)
        if isinstance(found, tuple):  # Google refused the setup itself: its words, as they are
            await client.close(code=found[0], message=found[1].encode()[:123])
            await self._record(call, 400, ProblemId.INVALID_REQUEST, {})
            return
        if upstream is None or lease is None or answer is None:
            await _close(client, 1013 if found == ProblemId.LIVE_PROJECTS_FULL else 1011,
                         found, call.lang)
            await self._record(call, problem(found).status or 503, found, {})
            return
        live.project = lease.project.name
        self._report(live, "opened")
        try:
            live.ended = await self._pump(client, upstream, answer, live)
        finally:
            self.pool.release(lease, _NEUTRAL, call.model)
            with contextlib.suppress(Exception):
                await upstream.close()
            self._report(live, "closed")
            await self._record(call, 200, live.ended, live.usage)

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

    async def _lease(self, live: Session, avoid: set[str]) -> Lease | ProblemId:
        """A key for the model in a project with a free Live seat (a full project is passed
        over, as a project without quota room is)."""
        full = False
        while (lease := self.pool.acquire(avoid, model=live.call.model)) is not None:
            project = lease.project
            if await self.seats.take_project(project.name, project.tier,
                                             live.call.request_id):
                live.seats.append(project_scope(project.name))
                return lease
            self.pool.give_back(lease)
            avoid.add(project.name)
            full = True
        return ProblemId.LIVE_PROJECTS_FULL if full else ProblemId.NO_HEALTHY_KEYS

    async def _open(self, live: Session, version: str, setup: bytes) -> tuple[
            aiohttp.ClientWebSocketResponse | None, Lease | None, aiohttp.WSMessage | None,
            ProblemId | tuple[int, str]]:
        """The upstream socket, its setup answered: up to `_TRIES` projects. When Google
        refuses the setup itself (1007/1008 about the request, not the key: an unknown model,
        a bad field), no other project would answer otherwise: its close code and reason."""
        call, avoid = live.call, set[str]()
        found = ProblemId.NO_HEALTHY_KEYS
        for _ in range(_TRIES):
            lease = await self._lease(live, avoid)
            if not isinstance(lease, Lease):
                return None, None, None, lease
            url = (f"{self.upstream}/ws/google.ai.generativelanguage.{version}."
                   "GenerativeService.BidiGenerateContent")
            started = asyncio.get_running_loop().time()
            avoid.add(lease.project.name)
            try:
                upstream = await self.client.session_for(lease.project.proxy).ws_connect(
                    url, headers={"x-goog-api-key": lease.key.secret},
                    max_msg_size=16 * 1024 * 1024, timeout=aiohttp.ClientWSTimeout(
                        ws_close=10))
                await upstream.send_str(setup.decode())
                answer = await asyncio.wait_for(upstream.receive(), _SETUP_TIMEOUT_S)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("live: project %s could not open a session: %s",
                            lease.project.name, exc)
                found = ProblemId.UPSTREAM_UNREACHABLE
                self._attempt(call, lease, 0, found, started)
                self.pool.release(lease, Verdict(found, "none", True, False), call.model)
                await self._leave_project(live, lease)
                continue
            payload = json_or_none(answer.data) if answer.type in (WSMsgType.TEXT,
                                                            WSMsgType.BINARY) else None
            if isinstance(payload, dict) and "setupComplete" in payload:
                self._attempt(call, lease, 200, None, started)
                return upstream, lease, answer, found
            code, said = upstream.close_code or 0, str(answer.extra or "")
            verdict = _refusal(code, said)
            if not verdict.retry:
                self._attempt(call, lease, code, verdict.problem, started)
                self.pool.release(lease, verdict, call.model)
                await upstream.close()
                return None, None, None, (code, said)
            found = verdict.problem or found
            self._attempt(call, lease, code, verdict.problem, started)
            self.pool.release(lease, verdict, call.model)
            log.warning("live: project %s refused the setup: %s %s", lease.project.name,
                        code, said)
            await upstream.close()
            await self._leave_project(live, lease)
        return None, None, None, found

    async def _leave_project(self, live: Session, lease: Lease) -> None:
        scope = project_scope(lease.project.name)
        await self.seats.free([scope], live.call.request_id)
        live.seats.remove(scope)

    def _attempt(self, call: Call, lease: Lease, status: int, found: ProblemId | None,
                 started: float) -> None:
        took = (asyncio.get_running_loop().time() - started) * 1000
        call.attempts.append(Attempt(lease.project.name, lease.key.masked, status, found, took))

    async def _pump(self, client: web.WebSocketResponse,
                    upstream: aiohttp.ClientWebSocketResponse, setup_complete: aiohttp.WSMessage,
                    live: Session) -> ProblemId | None:
        """Frames both ways until either side ends; the problem that ended it, if any."""
        await _forward(client, setup_complete)
        call, counts = live.call, live.frames
        ended: list[ProblemId] = []
        loop = asyncio.get_running_loop()
        started = last = loop.time()
        life = self.limits.max_duration_s
        if live.grant is not None:  # a token's session ends when the token does
            life = min(life, live.grant.expires_at - self.tokens.wall())

        async def watch() -> None:  # idle, maximum duration, rights, seats
            while True:
                now = loop.time()
                idle_left = self.limits.idle_timeout_s - (now - last)
                life_left = life - (now - started)
                found = (ProblemId.LIVE_IDLE if idle_left <= 0 else ProblemId.LIVE_TOO_LONG
                         if life_left <= 0 else await self.rights.still_allowed(live))
                if found is not None:
                    ended.append(found)
                    await _close(client, 1001 if found in (ProblemId.LIVE_IDLE,
                                                           ProblemId.LIVE_TOO_LONG) else 1008,
                                 found, call.lang)
                    return
                await self.seats.renew(live.seats, call.request_id)
                self._report(live, "progress")
                await asyncio.sleep(min(idle_left, life_left, self.limits.check_every_s))

        async def down() -> None:  # upstream → client
            nonlocal last
            while True:
                frame = await upstream.receive()
                if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    last = loop.time()
                    data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
                    counts[1] += 1
                    counts[3] += len(data)
                    if b"usageMetadata" in data and self.rights.spent(live, data):
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
                counts[0] += 1
                counts[2] += len(frame.data)

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up()),
                 asyncio.ensure_future(watch())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        return ended[0] if ended else None

    def _report(self, live: Session, state: str) -> None:
        up, down, bytes_up, bytes_down = live.frames
        live.frames[:] = [0, 0, 0, 0]
        ended = "" if state != "closed" else str(live.ended or "client-or-upstream")
        self.events.emit(live.call, LiveReport(state, live.call.model, live.project, up, down,
                                               bytes_up, bytes_down, ended))

    async def _record(self, call: Call, status: int, found: ProblemId | None,
                      usage: dict[str, Any]) -> None:
        await self.events.finished(call, Finished(status, found, usage or None))


def _refusal(code: int, said: str) -> Verdict:
    """What an upstream's close before setupComplete says of the key (its reason is Google's
    words: a bad key takes the key out of use, as on the HTTP surface)."""
    if "API key not valid" in said:
        return Verdict(ProblemId.API_KEY_INVALID, "disable_key", True, True, reason=said)
    if code in (1007, 1008):  # the setup's own fault: another project would say the same
        return Verdict(ProblemId.INVALID_REQUEST, "none", False, False, reason=said)
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
