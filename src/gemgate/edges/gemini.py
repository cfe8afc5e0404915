"""The Gemini-native edge: every route under /v1beta, /v1 and /v1alpha (and unversioned
/models/…, as v1beta), handed to the pipeline and answered byte for byte as Google answered.

This module is the wire: how a request becomes an `Inbound` (the raw path and query, the token
wherever the client put it, the client's address), and how an `Outcome` becomes an aiohttp
response (a whole body, a stream written chunk by chunk, or an error in Google's shape).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.refusal import Refusal
from gemgate.google_errors import retry_info
from gemgate.pipeline import guard
from gemgate.pipeline.flow import Decoder, Outcome, Pipeline
from gemgate.pipeline.inbound import Inbound
from gemgate.pipeline.streams import StreamRun
from gemgate.problems import ProblemId

from .intake import BodyReader
from .replies import (
    answer_headers,
    gateway_error,
    google_error_of,
    json_reply,
    lang_of,
    new_request_id,
    retry_after,
)
from .safety import LOGGED
from .wire import ClientAddress, client_token

VERSIONS = "v1beta|v1|v1alpha"


def raw_query_without_key(request: web.Request) -> str:
    """The query exactly as the client encoded it, minus its `key` (the gemgate token). Never
    decoded and re-encoded: `pageToken=ab%2Bcd%2F%3D%3D` must reach Google as sent, and a
    decoded `%00` or `%23` would change the request or break its line."""
    raw = request.raw_path.partition("?")[2]
    if "key" not in raw:
        return raw
    kept = [item for item in raw.split("&") if unquote(item.partition("=")[0]) != "key"]
    return "&".join(kept)


def _raw_rest(request: web.Request, prefix: str, version: str) -> str:
    """The path after `{prefix}/{version}/` exactly as the client encoded it: forwarded as
    sent, never decoded (a decoded `%00` or `%2F` would change what Google is asked)."""
    raw = request.raw_path.split("?", 1)[0]
    return raw[len(prefix) + len(version) + 2:] if version else raw[len(prefix) + 1:]


class GeminiEdge:
    def __init__(self, flow: Pipeline, bodies: BodyReader, address: ClientAddress) -> None:
        self.flow, self.bodies, self.address = flow, bodies, address
        self.prefix = ""

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        self.prefix = prefix
        # Unversioned /models/… is v1beta: clients that append /models/… to their base URL
        # (litellm and others) work with the gateway's root as base URL.
        return [web.route("*", f"{prefix}/{{version:{VERSIONS}}}/{{path:.*}}", self.handle),
                web.route("*", f"{prefix}/models/{{path:.*}}", self.unversioned)]

    # ---- the way in ---------------------------------------------------------------------

    def inbound(self, request: web.Request, version: str, path: str) -> Inbound:
        """The request as the pipeline takes it; the body is read only when asked for."""
        return Inbound(request.method, version, path, raw_query_without_key(request),
                       request.headers, client_token(request), self.address.of(request),
                       lang_of(request), lambda: self.bodies.read(request))

    def new_call(self, request: web.Request, inbound: Inbound, surface: str = "gemini") -> Call:
        request[LOGGED] = True  # the pipeline writes this request's access-log line
        return self.flow.new_call(inbound, new_request_id(), surface)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        return await self.serve(request, version, _raw_rest(request, self.prefix, version))

    async def unversioned(self, request: web.Request) -> web.StreamResponse:
        return await self.serve(request, "v1beta", _raw_rest(request, self.prefix, ""))

    async def serve(self, request: web.Request, version: str,
                    path: str | None = None, decode: Decoder = guard.gemini,
                    adjust: Callable[[Call, Answer], Awaitable[None]] | None = None,
                    ) -> web.StreamResponse:
        """A request of Gemini's own wire, through the pipeline. `adjust` may rewrite a
        successful whole answer before it is written (the upload start's URL)."""
        if path is None:
            path = _raw_rest(request, self.prefix, version)
        inbound = self.inbound(request, version, path)
        call = self.new_call(request, inbound)
        outcome = await self.flow.run(call, inbound, decode)
        if adjust is not None and outcome.answer is not None and outcome.stream is None \
                and 200 <= outcome.answer.status < 300:
            await adjust(call, outcome.answer)
        return await self.encode(request, call, outcome)

    # ---- the way back -------------------------------------------------------------------

    async def encode(self, request: web.Request, call: Call,
                     outcome: Outcome) -> web.StreamResponse:
        if outcome.refusal is not None:
            return self.refused(call, outcome.refusal)
        if outcome.stream is not None:
            return await self._pipe(request, call, outcome.stream)
        answer = outcome.answer
        assert answer is not None
        if 200 <= answer.status < 300:
            return web.Response(status=answer.status, body=answer.body,
                                headers=answer_headers(call, answer))
        extra = {"x-gemgate-model": call.model} if call.model else {}
        if answer.retry_after_s is not None:
            extra["Retry-After"] = retry_after(answer.retry_after_s)
        return self._error(call, answer.status, google_error_of(call, answer), extra)

    def refused(self, call: Call, refused: Refusal) -> web.Response:
        """gemgate's own refusal; 429s carry RetryInfo (and Retry-After) for when the caller
        may call again."""
        details, extra = None, {}
        if refused.retry_after_s is not None:
            details = [retry_info(refused.retry_after_s)]
            extra["Retry-After"] = retry_after(refused.retry_after_s)
        payload = gateway_error(refused.status, refused.problem, call.lang,
                                refused.message or None, details)
        return self._error(call, refused.status, payload, extra)

    def _error(self, call: Call, status: int, payload: dict[str, object],
               extra: dict[str, str] | None = None) -> web.Response:
        headers = {"x-gemgate-request-id": call.request_id, **(extra or {})}
        return json_reply(status, payload, headers)

    async def _pipe(self, request: web.Request, call: Call,
                    run: StreamRun) -> web.StreamResponse:
        """Relays the stream as it arrives, chunk by chunk, never re-framed. A failure after
        the first byte ends the stream with an error event instead of a silent cut; the last
        byte waits for the ledger (the run's end), so a client that saw the whole answer has
        its record."""
        response = web.StreamResponse(status=200, headers=answer_headers(call, run.answer))
        async with run:
            await response.prepare(request)
            async for chunk in run.chunks():
                await response.write(chunk)
            if run.broken:
                await response.write(self._interruption(call))
        await finish_stream(response, run)
        return response

    def _interruption(self, call: Call) -> bytes:
        payload = orjson.dumps(gateway_error(503, ProblemId.STREAM_INTERRUPTED, call.lang,
                                             "The upstream stream was interrupted."))
        return b"data: " + payload + b"\r\n\r\n" if call.sse else b",\r\n" + payload + b"]"


async def finish_stream(response: web.StreamResponse, run: StreamRun) -> None:
    """The last byte, after the run has ended (and the record is committed); nothing when the
    client already left."""
    if not run.abandoned:
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()


def unknown_route() -> web.RouteDef:
    async def unknown(request: web.Request) -> web.Response:
        lang = lang_of(request)
        payload = gateway_error(404, ProblemId.UNKNOWN_ROUTE, lang,
                                f"gemgate does not serve {request.method} {request.path}.")
        return json_reply(404, payload)

    return web.route("*", "/{tail:.*}", unknown)
