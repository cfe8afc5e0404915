"""The Gemini-native edge: every route under /v1beta, /v1 and /v1alpha, turned into a Call,
passed through the stages, and answered byte for byte as Google answered."""

from __future__ import annotations

from urllib.parse import unquote

import orjson
from aiohttp import web

from gemgate.google_errors import retry_info
from gemgate.pipeline import guard
from gemgate.pipeline.answer import Answer
from gemgate.pipeline.call import Call
from gemgate.pipeline.rights import Refusal
from gemgate.pipeline.stages import Pipeline, refusal
from gemgate.problems import ProblemId
from gemgate.upstream.classify import NETWORK_FAILURE, Verdict, classify, error_of
from gemgate.upstream.client import NETWORK_ERRORS

from .intake import BodyReader, BodyRefused
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


def _error_event(chunk: bytes) -> tuple[int, Verdict] | None:
    """The status and meaning of an error event at the very end of a stream (`data: {"error":
    …}` or, in a JSON-array stream, `,{"error": …}]`); None when it ended otherwise."""
    at = chunk.rfind(b'{"error"')
    if at < 0:
        return None
    body = chunk[at:].strip().removesuffix(b"]").strip()
    code = error_of(body).get("code")
    if not isinstance(code, int) or not 400 <= code <= 599:
        return None
    return code, classify(code, body)


class GeminiEdge:
    def __init__(self, flow: Pipeline, bodies: BodyReader) -> None:
        self.flow, self.bodies = flow, bodies
        self.prefix = ""

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        self.prefix = prefix
        # Unversioned /models/… is v1beta: clients that append /models/… to their base URL
        # (litellm and others) work with the gateway's root as base URL.
        return [web.route("*", f"{prefix}/{{version:{VERSIONS}}}/{{path:.*}}", self.handle),
                web.route("*", f"{prefix}/models/{{path:.*}}", self.unversioned)]

    def new_call(self, request: web.Request, version: str, path: str) -> Call:
        request[LOGGED] = True  # the pipeline writes this request's access-log line
        return self.flow.new_call(request, version, path,
                                  raw_query_without_key(request), lang_of(request),
                                  new_request_id())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        return await self.serve(request, version, _raw_rest(request, self.prefix, version))

    async def unversioned(self, request: web.Request) -> web.StreamResponse:
        return await self.serve(request, "v1beta", _raw_rest(request, self.prefix, ""))

    async def serve(self, request: web.Request, version: str,
                    path: str | None = None) -> web.StreamResponse:
        if path is None:
            path = _raw_rest(request, self.prefix, version)
        call = self.new_call(request, version, path)
        problem = self.flow.authenticate(request, call)
        if problem is None:
            try:
                call.body = await self.bodies.read(request)
            except BodyRefused as exc:
                problem = exc.problem
        if problem is None:
            problem = guard.check_path(call)
        if problem is None:
            guard.describe(call)
            problem = guard.check_json(call)
        refused = refusal(problem) if problem is not None else self.flow.admit(call, request)
        if refused is not None:
            return await self.refuse(call, refused)
        answer = await self.flow.forward(call)
        return await self.reply(request, call, answer)

    async def refuse(self, call: Call, refused: Refusal) -> web.Response:
        """gemgate's own refusal; 429s carry RetryInfo (and Retry-After) for when the caller
        may call again."""
        await self.flow.finish(call, refused.status, refused.problem)
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

    async def reply(self, request: web.Request, call: Call, answer: Answer) -> web.StreamResponse:
        if answer.stream is not None:
            return await self._pipe(request, call, answer)
        if 200 <= answer.status < 300:
            await self.flow.finish(call, answer.status, None, answer.usage)
            return web.Response(status=answer.status, body=answer.body,
                                headers=answer_headers(call, answer))
        await self.flow.finish(call, answer.status, answer.problem)
        extra = {"x-gemgate-model": call.model} if call.model else {}
        if answer.retry_after_s is not None:
            extra["Retry-After"] = retry_after(answer.retry_after_s)
        return self._error(call, answer.status, google_error_of(call, answer), extra)

    async def _pipe(self, request: web.Request, call: Call, answer: Answer) -> web.StreamResponse:
        """Relays the stream as it arrives, chunk by chunk, never re-framed. A failure after
        the first byte ends the stream with an error event instead of a silent cut. The end of
        the stream waits for the ledger: a client that saw the whole answer has its record."""
        upstream = answer.stream
        assert upstream is not None
        response = web.StreamResponse(status=200, headers=answer_headers(call, answer))
        async with self.flow.streaming(call, answer) as progress:
            await response.prepare(request)
            await response.write(answer.first_chunk)
            broken = False
            while True:
                try:
                    chunk = await upstream.read()
                except (TimeoutError, *NETWORK_ERRORS):
                    broken, progress.verdict = True, NETWORK_FAILURE
                    await response.write(self._interruption(call))
                    break
                if not chunk:
                    break
                progress.relayed(chunk)
                await response.write(chunk)
            status = 502 if broken else 200
            if not broken:  # an upstream error event ends it: relayed as sent, recorded as such
                status, progress.verdict = _error_event(progress.tail) or (status,
                                                                           progress.verdict)
            await self.flow.stream_ended(call, answer, progress, status, broken)
            await response.write_eof()
        return response

    def _interruption(self, call: Call) -> bytes:
        payload = orjson.dumps(gateway_error(503, ProblemId.STREAM_INTERRUPTED, call.lang,
                                             "The upstream stream was interrupted."))
        return b"data: " + payload + b"\r\n\r\n" if call.sse else b",\r\n" + payload + b"]"


def unknown_route() -> web.RouteDef:
    async def unknown(request: web.Request) -> web.Response:
        lang = lang_of(request)
        payload = gateway_error(404, ProblemId.UNKNOWN_ROUTE, lang,
                                f"gemgate does not serve {request.method} {request.path}.")
        return json_reply(404, payload)

    return web.route("*", "/{tail:.*}", unknown)

