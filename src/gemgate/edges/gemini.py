"""The Gemini-native edge: every route under /v1beta, /v1 and /v1alpha, turned into a Call,
passed through the stages, and answered byte for byte as Google answered."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web
from multidict import CIMultiDict

from gemgate.google_errors import retry_info
from gemgate.logs import access_log
from gemgate.pipeline import guard
from gemgate.pipeline.auth import Authenticator
from gemgate.pipeline.call import Call
from gemgate.pipeline.meter import Meter
from gemgate.pipeline.relay import Answer, Relay
from gemgate.pipeline.rights import Refusal, Rights
from gemgate.pipeline.route import Router
from gemgate.secrets import scrub
from gemgate.upstream.affinity import ResourceOwners
from gemgate.upstream.classify import NETWORK_FAILURE, OK, Verdict
from gemgate.upstream.client import NETWORK_ERRORS, forwardable

from .replies import (
    cooling_error,
    gateway_error,
    json_reply,
    lang_of,
    new_request_id,
    upstream_error,
)

VERSIONS = "v1beta|v1|v1alpha"
REFUSAL_STATUS = {"TOKEN_MISSING": 401, "TOKEN_INVALID": 401, "GOOGLE_KEY_SENT": 401,
             "KEY_REVOKED": 401, "KEY_EXPIRED": 401, "KEY_DISABLED": 403,
             "IP_NOT_ALLOWED": 403, "MALFORMED_JSON": 400, "BODY_TOO_LARGE": 413,
             "BAD_PRIORITY": 400}


def _query_without_key(query_string: str) -> str:
    if "key=" not in query_string:
        return query_string
    kept = [(k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k != "key"]
    return urlencode(kept, safe="$;=,:/")


def _raw_rest(request: web.Request, prefix: str, version: str) -> str:
    """The path after `{prefix}/{version}/` exactly as the client encoded it: forwarded as
    sent, never decoded (a decoded `%00` or `%2F` would change what Google is asked)."""
    raw = request.raw_path.split("?", 1)[0]
    return raw[len(prefix) + len(version) + 2:]


def _deadline_s(request: web.Request, default: float) -> float:
    """The client's X-Server-Timeout (seconds) when shorter than the gateway's own deadline."""
    asked = request.headers.get("X-Server-Timeout")
    try:
        return min(default, float(asked)) if asked else default
    except ValueError:
        return default


class GeminiEdge:
    def __init__(self, auth: Authenticator, router: Router, rights: Rights, relay: Relay,
                 meter: Meter, owners: ResourceOwners, deadline_s: float,
                 log_requests: bool = True) -> None:
        self.auth, self.router, self.rights, self.relay = auth, router, rights, relay
        self.meter, self.owners = meter, owners
        self.deadline_s = deadline_s
        self.log_requests = log_requests
        self.prefix = ""

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        self.prefix = prefix
        return [web.route("*", f"{prefix}/{{version:{VERSIONS}}}/{{path:.*}}", self.handle)]

    def new_call(self, request: web.Request, version: str, path: str) -> Call:
        headers = {k: v for k, v in request.headers.items() if forwardable(k)}
        call = Call(request_id=new_request_id(), method=request.method, version=version,
                    path=path, query=_query_without_key(request.query_string), headers=headers,
                    body=b"", lang=lang_of(request))
        call.deadline = call.started + _deadline_s(request, self.deadline_s)
        call.client_ip = self.auth.address.of(request)
        return call

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        call = self.new_call(request, version, _raw_rest(request, self.prefix, version))
        tenant, problem = self.auth.authenticate(request, call.client_ip)
        if problem is None:
            call.tenant = tenant
            try:
                call.body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                problem = "BODY_TOO_LARGE"
        if problem is None:
            guard.describe(call)
            problem = guard.check_json(call) or self.router.route(call, request)
        if problem is not None:
            return await self.refuse(call, REFUSAL_STATUS[problem], problem)
        refusal = self.rights.check(call)
        if refusal is not None:
            return await self.refuse_rights(call, refusal)
        call.affinity = self.owners.owner_of(call)
        answer = await self.relay.forward(call)
        return await self.reply(request, call, answer)

    async def refuse(self, call: Call, status: int, problem: str) -> web.Response:
        await self.finish(call, status, problem)
        return self._error(call, status, gateway_error(status, problem, call.lang))

    async def refuse_rights(self, call: Call, refusal: Refusal) -> web.Response:
        """A virtual key's own limit: 429s carry RetryInfo (and Retry-After) for when the key
        may call again."""
        await self.finish(call, refusal.status, refusal.problem)
        details, extra = None, {}
        if refusal.retry_after_s is not None:
            details = [retry_info(refusal.retry_after_s)]
            extra["Retry-After"] = str(max(1, int(refusal.retry_after_s + 0.999)))
        payload = gateway_error(refusal.status, refusal.problem, call.lang, refusal.message,
                                details)
        return self._error(call, refusal.status, payload, extra)

    def _error(self, call: Call, status: int, payload: dict[str, object],
               extra: dict[str, str] | None = None) -> web.Response:
        headers = {"x-gemgate-request-id": call.request_id, **(extra or {})}
        return json_reply(status, payload, headers)

    async def reply(self, request: web.Request, call: Call, answer: Answer) -> web.StreamResponse:
        if answer.stream is not None:
            return await self._pipe(request, call, answer)
        if 200 <= answer.status < 300:
            if call.action not in guard.MODEL_ACTIONS and call.attempts:
                self.owners.remember(answer.body, call.attempts[-1].project)
            await self.finish(call, answer.status, None, answer.usage)
            return web.Response(status=answer.status, body=answer.body,
                                headers=self._headers(call, answer))
        return await self._error_answer(call, answer)

    @staticmethod
    def _headers(call: Call, answer: Answer) -> CIMultiDict[str]:
        """Google's headers, plus which request this was and which model answered, and why."""
        headers = CIMultiDict(answer.headers)
        headers["x-gemgate-request-id"] = call.request_id
        if call.model:
            headers["x-gemgate-model"] = call.model
        if call.route_reason:
            headers["x-gemgate-route"] = call.route_reason
        return headers

    async def _error_answer(self, call: Call, answer: Answer) -> web.Response:
        problem = answer.problem
        payload = None
        if answer.body and answer.gateway_problem is None:
            payload = upstream_error(answer.body, problem, call.lang)
        if payload is None and problem in ("ALL_PROJECTS_COOLING", "NO_QUOTA_ROOM"):
            payload = cooling_error(call.lang, answer.retry_after_s or 0.0, answer.quota_error,
                                    problem)
        if payload is None:
            payload = gateway_error(answer.status, problem or "UPSTREAM_INTERNAL", call.lang)
        await self.finish(call, answer.status, problem)
        extra = {"x-gemgate-model": call.model} if call.model else {}
        if answer.retry_after_s is not None:
            extra["Retry-After"] = str(max(1, int(answer.retry_after_s + 0.999)))
        return self._error(call, answer.status, payload, extra)

    async def _pipe(self, request: web.Request, call: Call, answer: Answer) -> web.StreamResponse:
        """Relays the stream as it arrives, chunk by chunk, never re-framed. A failure after
        the first byte ends the stream with an error event instead of a silent cut. The end of
        the stream waits for the ledger: a client that saw the whole answer has its record."""
        upstream, lease = answer.stream, answer.lease
        assert upstream is not None and lease is not None
        response = web.StreamResponse(status=200, headers=self._headers(call, answer))
        verdict, status, tail = OK, 200, answer.first_chunk
        finished = False
        try:
            await response.prepare(request)
            await response.write(answer.first_chunk)
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (TimeoutError, *NETWORK_ERRORS):
                    verdict, status = NETWORK_FAILURE, 502
                    await response.write(self._interruption(call))
                    break
                if not chunk:
                    break
                if b'"error"' in chunk:  # an upstream error event may spell out the key
                    chunk = scrub(chunk, lease.key.secret)
                tail = (tail + chunk)[-8192:]
                await response.write(chunk)
            if status == 200:
                upstream.release()
            else:
                upstream.close()
            self.relay.finish_stream(answer, verdict, tail)
            finished = True
            await self.finish(call, status, verdict.problem, answer.usage)
            await response.write_eof()
        except ConnectionResetError:
            if not finished:
                self._abandoned(call, answer, verdict, tail)
        except asyncio.CancelledError:
            if not finished:
                self._abandoned(call, answer, verdict, tail)
            raise
        return response

    def _abandoned(self, call: Call, answer: Answer, verdict: Verdict, tail: bytes) -> None:
        """The client went away mid-stream: stop reading upstream, and record what it was
        sent, flagged as cancelled, with the usage the last relayed chunk reported."""
        assert answer.stream is not None
        answer.stream.close()
        self.relay.finish_stream(answer, verdict, tail)
        self.log(call, 499, verdict.problem, answer.usage)
        self.meter.record(call, 499, verdict.problem, answer.usage, cancelled=True, wait=False)

    def _interruption(self, call: Call) -> bytes:
        payload = orjson.dumps(gateway_error(503, "STREAM_INTERRUPTED", call.lang,
                                             "The upstream stream was interrupted."))
        return b"data: " + payload + b"\r\n\r\n" if call.sse else b",\r\n" + payload + b"]"

    async def finish(self, call: Call, status: int, problem: str | None,
                     usage: dict[str, Any] | None = None) -> None:
        """The request's access-log line and its ledger record, committed before the answer's
        last byte leaves."""
        self.log(call, status, problem, usage)
        await self.meter.commit(call, status, problem, usage)

    def log(self, call: Call, status: int, problem: str | None,
            usage: dict[str, Any] | None = None) -> None:
        writer = access_log()
        if writer is None or not self.log_requests:
            return
        last = call.attempts[-1] if call.attempts else None
        fields: dict[str, object] = {
            "request_id": call.request_id,
            "tenant": call.tenant.name if call.tenant else None,
            "method": call.method,
            "route": f"/{call.version}/{call.path}",
            "model": call.model or None,
            "model_asked": call.model_asked if call.model_asked != call.model else None,
            "priority": call.priority,
            "stream": call.stream,
            "project": last.project if last else None,
            "key": last.masked_key if last else None,
            "status": status,
            "problem": problem,
            "attempts": len(call.attempts),
            "upstream_ms": round(sum(a.upstream_ms for a in call.attempts), 2),
            "total_ms": round(call.elapsed_ms(), 2),
        }
        if usage:
            fields["tokens"] = usage
        writer.write(fields)


def unknown_route() -> web.RouteDef:
    async def unknown(request: web.Request) -> web.Response:
        lang = lang_of(request)
        payload = gateway_error(404, "UNKNOWN_ROUTE", lang,
                                f"gemgate does not serve {request.method} {request.path}.")
        return json_reply(404, payload)

    return web.route("*", "/{tail:.*}", unknown)

