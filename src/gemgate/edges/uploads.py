"""Resumable uploads (`/upload/{version}/files`) through the gateway.

Google answers the start of an upload with an `x-goog-upload-url`; the client then sends the
file's chunks there, with no API key. gemgate rewrites that URL to point back at itself, keeps
which project the upload belongs to, and streams the chunks through without buffering them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.edges.gemini import GeminiEdge
from gemgate.pipeline import guard
from gemgate.pipeline.google import response_headers
from gemgate.pipeline.inbound import BodyProblem
from gemgate.problems import ProblemId
from gemgate.secrets import scrub
from gemgate.state.records import Records
from gemgate.upstream.client import NETWORK_ERRORS, UpstreamClient, forwardable

from .replies import gateway_error, json_reply, lang_of

_SESSION_TTL_S = 24 * 3600  # Google keeps an upload URL for a week; a day is ample here
_SESSION = "upload:"


@dataclass(frozen=True, slots=True)
class UploadSession:
    upstream_url: str
    project: str
    proxy: str | None
    tenant: str  # Tenant.id of who started it: the file will be theirs
    secret: str  # the key that started it, to mask in what upstream answers

    def encoded(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decoded(cls, raw: bytes) -> UploadSession:
        return cls(**orjson.loads(raw))


class UploadEdge:
    def __init__(self, gemini: GeminiEdge, client: UpstreamClient, sessions: Records,
                 prefix: str = "", public_url: str | None = None) -> None:
        self.gemini, self.client, self.prefix = gemini, client, prefix
        self.public_url = public_url
        self.sessions = sessions  # upload id → UploadSession, shared by replicas

    def routes(self) -> list[web.RouteDef]:
        path = "/upload/{version:v1beta|v1|v1alpha}/{path:.*}"
        routes = [web.post(self.prefix + path, self.handle)]
        if self.prefix:  # the SDK sends chunks to the base URL's host without its path
            routes.append(web.post(path, self.handle))
        return routes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        upload_id = request.query.get("upload_id")
        if upload_id:
            return await self._chunk(request, upload_id)
        return await self._start(request)

    async def _start(self, request: web.Request) -> web.StreamResponse:
        """The start of an upload is an ordinary call, through every stage of the pipeline
        (auth, rights, key choice, retries); its answer's upload URL is rewritten to ours."""
        version, path = request.match_info["version"], request.match_info["path"]

        async def point_here(call: Call, answer: Answer) -> None:
            upstream_url = CIMultiDict(answer.headers).get("x-goog-upload-url")
            if not upstream_url or not call.attempts:
                return
            upload_id = parse_qs(urlsplit(upstream_url).query).get("upload_id", [""])[0]
            project = call.attempts[-1].project
            pool_project = self.gemini.flow.relay.pool.project(project)
            tenant = call.tenant.id if call.tenant is not None else ""
            session = UploadSession(upstream_url, project,
                                    pool_project.proxy if pool_project else None, tenant,
                                    answer.secret or "")
            await self.sessions.put(_SESSION + upload_id, session.encoded(), _SESSION_TTL_S)
            ours = f"{self._own_url(request)}?{urlsplit(upstream_url).query}"
            answer.headers = [(k, ours if k.lower() == "x-goog-upload-url" else v)
                              for k, v in answer.headers]

        return await self.gemini.serve(request, "", f"upload/{version}/{path}",
                                       guard.upload_start, point_here)

    def _own_url(self, request: web.Request) -> str:
        """Where the client must send the file's bytes: this upload route as the client
        reaches it — `server.public_url` when set, else what a trusted reverse proxy says
        (X-Forwarded-Proto/-Host: a proxy that terminates TLS must not turn https into
        http), else the request's own address."""
        if self.public_url:
            return self.public_url + request.path[len(self.prefix):]
        return self.gemini.address.public_origin(request) + request.path

    async def _chunk(self, request: web.Request, upload_id: str) -> web.StreamResponse:
        raw = await self.sessions.get(_SESSION + upload_id)
        lang = lang_of(request)
        if raw is None:
            return json_reply(404, gateway_error(404, ProblemId.UPLOAD_UNKNOWN, lang))
        session = UploadSession.decoded(raw)
        headers = {k: v for k, v in request.headers.items() if forwardable(k)}
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        stalled: list[BodyProblem] = []

        async def file_bytes() -> AsyncIterator[bytes]:
            """The client's bytes as they arrive, each wait bounded by the body idle timeout:
            a client that stalls mid-file frees the connection (408), a slow one is never cut.
            (aiohttp reports the generator's failure as a client error: it is noted here.)"""
            try:
                async for chunk in self.gemini.bodies.chunks(request):
                    yield chunk
            except BodyProblem as exc:
                stalled.append(exc)
                raise

        try:
            upstream = await self.client.session_for(session.proxy).post(
                URL(session.upstream_url, encoded=True), data=file_bytes(), headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300))
            body = scrub(await upstream.read(), session.secret)
            upstream.release()
        except (BodyProblem, *NETWORK_ERRORS):
            if stalled:
                return json_reply(408, gateway_error(408, stalled[0].problem, lang))
            return json_reply(502, gateway_error(502, ProblemId.UPSTREAM_UNREACHABLE, lang))
        if upstream.headers.get("x-goog-upload-status") == "final":
            await self.sessions.delete(_SESSION + upload_id)
            await self.gemini.flow.owners.created(session.tenant, body, session.project)
        return web.Response(status=upstream.status, body=body,
                            headers=CIMultiDict(response_headers(upstream, session.secret)))
