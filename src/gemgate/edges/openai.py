"""The OpenAI-compatible edge: /v1/chat/completions, /v1/embeddings, /v1/models[/{id}], and the
same under /v1beta/openai/ (Google's own compatibility path, so its users swap only the host).

Each request is translated into a Gemini call and runs through the same stages as a native one
(auth, route, rights, scheduling, pool, fallback, ledger); the answer is translated back. Errors
take OpenAI's shape and the HTTP status the openai SDKs map to their exception classes.

`GET /v1/models` is also Gemini's own route (api_version v1): a caller that authenticates the
OpenAI way (`Authorization: Bearer`, no x-goog-api-key or ?key=) gets OpenAI's list, any other
gets Gemini's, from the native edge.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gemgate.compat import embeddings as embedding
from gemgate.compat import models as model_list
from gemgate.compat.chat_request import (
    ChatRequest,
    RequestInvalid,
    model_id,
    remote_image_urls,
    to_gemini,
)
from gemgate.compat.chat_response import ChunkTranslator, ToolIds, completion
from gemgate.compat.errors import from_google, openai_error
from gemgate.compat.remote_images import RemoteImages
from gemgate.compat.sse import EventReader, event
from gemgate.pipeline.answer import Answer
from gemgate.pipeline.call import Call
from gemgate.pipeline.rights import Refusal
from gemgate.pipeline.stages import Pipeline, refusal
from gemgate.problems import ProblemId, hint
from gemgate.secrets import scrub
from gemgate.upstream.classify import NETWORK_FAILURE, Verdict, classify
from gemgate.upstream.client import NETWORK_ERRORS
from gemgate.upstream.providers import Providers

from .gemini import GeminiEdge
from .intake import BodyRefused
from .replies import gateway_error, google_error_of, lang_of, new_request_id, retry_after
from .safety import LOGGED

GOOGLE_PATH = "/v1beta/openai"
Shape = TypeVar("Shape", bound=BaseModel)
_JSON = "application/json"
_DONE = b"data: [DONE]\n\n"


def _dumps(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def speaks_openai(request: web.Request) -> bool:
    """OpenAI's SDKs send `Authorization: Bearer`; Gemini's send x-goog-api-key (or ?key=)."""
    return (request.headers.get("Authorization", "")[:7].lower() == "bearer "
            and "x-goog-api-key" not in request.headers and "key" not in request.query)


def _invalid(exc: ValidationError) -> RequestInvalid:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    return RequestInvalid(f"Invalid request: {where}: {message}" if where else message, where)


class OpenAIEdge:
    def __init__(self, flow: Pipeline, gemini: GeminiEdge, images: RemoteImages,
                 aliases: dict[str, str], providers: Providers) -> None:
        self.flow, self.gemini, self.images = flow, gemini, images
        self.aliases, self.providers = aliases, providers
        self.prefix = ""

    def _google_style(self, request: web.Request) -> bool:
        """Called on Google's compatibility path, where model ids read `models/…`."""
        return request.path.startswith(f"{self.prefix}{GOOGLE_PATH}/")

    def routes(self, prefix: str = "") -> list[web.RouteDef]:
        self.prefix = prefix
        routes = []
        for base in (f"{prefix}/v1", f"{prefix}{GOOGLE_PATH}"):
            routes += [web.post(f"{base}/chat/completions", self.chat),
                       web.post(f"{base}/embeddings", self.embeddings),
                       web.get(f"{base}/models", self.models),
                       web.get(f"{base}/models/{{model:.+}}", self.model)]
        return routes

    # ---- the call -------------------------------------------------------------------------

    def _new_call(self, request: web.Request) -> Call:
        request[LOGGED] = True  # the pipeline writes this request's access-log line
        call = self.flow.new_call(request, "v1beta", "", "", lang_of(request), new_request_id())
        call.headers = {"Content-Type": _JSON}  # the client's own headers are OpenAI's
        call.surface = "openai"
        return call

    async def _accept(self, request: web.Request, call: Call,
                      shape: type[Shape]) -> Shape | web.Response:
        """The authenticated caller's request, checked against `shape`; or the refusal."""
        problem = self.flow.authenticate(request, call)
        if problem is None:
            try:
                raw = await self.gemini.bodies.read(request)
            except BodyRefused as exc:
                problem = exc.problem
        if problem is not None:
            return await self.refuse(call, refusal(problem))
        try:
            return shape.model_validate_json(raw)
        except ValidationError as exc:
            return await self.invalid(call, _invalid(exc))

    def _aim(self, call: Call, model: str, action: str, body: dict[str, Any]) -> None:
        """Points the call at a model's Gemini method with the translated body."""
        call.action = action
        call.stream = call.sse = action == "streamGenerateContent"
        call.query = "alt=sse" if call.stream else ""
        call.model = model
        call.use_model(model)
        try:
            call.body = orjson.dumps(body)
        except TypeError:  # a client's integer beyond 64 bits, passed through in some field
            raise RequestInvalid("a number in the request is out of range (64-bit)") from None
        call.parsed = body

    # ---- chat completions -----------------------------------------------------------------

    async def chat(self, request: web.Request) -> web.StreamResponse:
        call = self._new_call(request)
        chat = await self._accept(request, call, ChatRequest)
        if isinstance(chat, web.Response):
            return chat
        try:
            body = to_gemini(chat, await self.images.fetch_all(remote_image_urls(chat)))
            self._aim(call, model_id(chat.model),
                      "streamGenerateContent" if chat.stream else "generateContent", body)
        except RequestInvalid as exc:
            return await self.invalid(call, exc)
        refused = self.flow.admit(call, request)
        if refused is not None:
            return await self.refuse(call, refused)
        answer = await self.flow.forward(call)
        if answer.stream is not None:
            return await self._stream(request, call, answer, chat.include_usage)
        if not 200 <= answer.status < 300:
            return await self.failed(call, answer)
        await self.flow.finish(call, answer.status, None, answer.usage)
        reply = completion(orjson.loads(answer.body), call.model, f"chatcmpl-{call.request_id}",
                           int(time.time()), ToolIds(call.request_id))
        return self._json(call, 200, reply)

    async def _stream(self, request: web.Request, call: Call, answer: Answer,
                      include_usage: bool) -> web.StreamResponse:
        """Gemini's events as chat.completion.chunk events, ending with `data: [DONE]`. A
        failure after the first byte ends the stream with an error chunk (which the openai
        SDKs raise as APIError), never a hang or a silent, short success."""
        upstream = answer.stream
        assert upstream is not None
        response = web.StreamResponse(headers={**self._headers(call),
                                                "Content-Type": "text/event-stream",
                                                "Cache-Control": "no-cache"})
        translator = ChunkTranslator(call.model, f"chatcmpl-{call.request_id}",
                                     int(time.time()), ToolIds(call.request_id))
        reader = EventReader()
        status, chunk = 200, answer.first_chunk
        async with self.flow.streaming(call, answer) as progress:
            await response.prepare(request)
            while True:
                for data in reader.feed(chunk):
                    failure = await self._relay_event(response, call, answer, translator, data)
                    if failure is not None:
                        progress.verdict, status = failure
                        break
                if status != 200:
                    break
                try:
                    chunk = await upstream.read()
                except (TimeoutError, *NETWORK_ERRORS):
                    chunk = b""
                if not chunk:
                    if not translator.finished:  # cut off before Google said it was done
                        progress.verdict, status = NETWORK_FAILURE, 502
                        await response.write(self._error_event(
                            call, 502, ProblemId.STREAM_INTERRUPTED,
                            "The upstream stream was interrupted."))
                    break
                progress.relayed(chunk)
            if status == 200 and include_usage:
                await response.write(event(_dumps(translator.usage_chunk())))
            await response.write(_DONE)
            await self.flow.stream_ended(call, answer, progress, status, broken=status != 200)
            await response.write_eof()
        return response

    async def _relay_event(self, response: web.StreamResponse, call: Call, answer: Answer,
                           translator: ChunkTranslator, data: bytes) -> tuple[Verdict, int] | None:
        """Writes one Gemini event's chunks; (verdict, status) when it was an error event."""
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            await response.write(self._error_event(call, 502, ProblemId.UPSTREAM_INTERNAL,
                                                   "The upstream sent an unreadable event."))
            return NETWORK_FAILURE, 502
        if isinstance(parsed.get("error"), dict):
            raw = scrub(data, answer.secret)
            code = parsed["error"].get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else 502
            verdict = classify(status, raw)
            message = str(orjson.loads(raw)["error"].get("message") or "Upstream error")
            await response.write(self._error_event(call, status, verdict.problem, message))
            return verdict, status
        for piece in translator.chunks(parsed):
            await response.write(event(_dumps(piece)))
        return None

    def _error_event(self, call: Call, status: int, problem: ProblemId | None,
                     message: str) -> bytes:
        return event(_dumps(openai_error(status, message, problem,
                                         hint(problem, call.lang) if problem else None)))

    # ---- embeddings -----------------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        call = self._new_call(request)
        asked = await self._accept(request, call, embedding.EmbeddingRequest)
        if isinstance(asked, web.Response):
            return asked
        try:
            body = embedding.to_gemini(asked)
            self._aim(call, model_id(asked.model), "batchEmbedContents", body)
        except RequestInvalid as exc:
            return await self.invalid(call, exc)
        answer = await self._answered(call, request)
        if isinstance(answer, web.Response):
            return answer
        usage = answer.usage or {}
        tokens = int(usage.get("promptTokenCount") or usage.get("totalTokenCount") or 0)
        return self._json(call, 200, embedding.from_gemini(orjson.loads(answer.body), asked,
                                                           call.model, tokens))

    # ---- models ---------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.StreamResponse:
        google_style = self._google_style(request)
        if not google_style and not speaks_openai(request):
            return await self.gemini.serve(request, "v1")
        call = self._new_call(request)
        answer = await self._upstream_get(request, call, "models", "pageSize=1000")
        if isinstance(answer, web.StreamResponse):
            return answer
        tenant = call.tenant
        # (the name listed, the model a key's patterns are judged by: an alias, by its target)
        names = [(m, m, "google") for m in model_list.google_ids(orjson.loads(answer.body))]
        names += [(alias, target, "gemgate") for alias, target in self.aliases.items()]
        names += [(name, name, owner) for name, owner in self.providers.listed()]
        entries = [model_list.entry(name, owner, google_style) for name, judged, owner in names
                   if tenant is None or tenant.allows_model(judged)]
        return self._json(call, 200, model_list.listing(entries))

    async def model(self, request: web.Request) -> web.StreamResponse:
        google_style = self._google_style(request)
        if not google_style and not speaks_openai(request):
            return await self.gemini.serve(request, "v1")
        call = self._new_call(request)
        name = model_id(request.match_info["model"])
        local = self._local_owner(name)
        if local is not None:
            problem = self.flow.authenticate(request, call)
            refused = refusal(problem) if problem else None
            judged = self.aliases.get(name, name)
            if refused is None and call.tenant is not None and \
                    not call.tenant.allows_model(judged):
                refused = Refusal(ProblemId.MODEL_NOT_ALLOWED, 403, f"This key may not use {name}.")
            if refused is not None:
                return await self.refuse(call, refused)
            await self.flow.finish(call, 200, None)
            return self._json(call, 200, model_list.entry(name, local, google_style))
        answer = await self._upstream_get(request, call, f"models/{name}", "")
        if isinstance(answer, web.StreamResponse):
            return answer
        return self._json(call, 200, model_list.entry(name, "google", google_style))

    def _local_owner(self, name: str) -> str | None:
        """Who owns a name gemgate itself answers for: an alias, or a provider's model."""
        if name in self.aliases:
            return "gemgate"
        link = self.providers.link(name)
        return link.provider.name if link is not None else None

    async def _upstream_get(self, request: web.Request, call: Call, path: str,
                            query: str) -> Answer | web.StreamResponse:
        """A GET relayed to Google; an error is answered at once (returned as the response)."""
        problem = self.flow.authenticate(request, call)
        if problem is not None:
            return await self.refuse(call, refusal(problem))
        call.method, call.path, call.query = "GET", path, query
        if path.startswith("models/"):
            call.model = path.removeprefix("models/")
        return await self._answered(call, request)

    async def _answered(self, call: Call, request: web.Request) -> Answer | web.Response:
        """A whole-body call admitted, relayed and recorded; a refusal or failure is answered
        at once (returned as the response)."""
        refused = self.flow.admit(call, request)
        if refused is not None:
            return await self.refuse(call, refused)
        answer = await self.flow.forward(call)
        if not 200 <= answer.status < 300:
            return await self.failed(call, answer)
        await self.flow.finish(call, answer.status, None, answer.usage)
        return answer

    # ---- answers --------------------------------------------------------------------------

    def _headers(self, call: Call) -> dict[str, str]:
        headers = {"x-gemgate-request-id": call.request_id}
        if call.model:
            headers["x-gemgate-model"] = call.model
        if call.route_reason:
            headers["x-gemgate-route"] = call.route_reason
        return headers

    def _json(self, call: Call, status: int, payload: dict[str, Any],
              extra: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=_dumps(payload),
                            headers={**self._headers(call), **(extra or {})},
                            content_type=_JSON)

    async def refuse(self, call: Call, refused: Refusal) -> web.Response:
        await self.flow.finish(call, refused.status, refused.problem)
        google = gateway_error(refused.status, refused.problem, call.lang,
                               refused.message or None)
        extra = {}
        if refused.retry_after_s is not None:
            extra["Retry-After"] = retry_after(refused.retry_after_s)
        return self._json(call, refused.status,
                          from_google(google, refused.status, refused.problem), extra)

    async def invalid(self, call: Call, exc: RequestInvalid) -> web.Response:
        await self.flow.finish(call, 400, ProblemId.OPENAI_REQUEST_INVALID)
        return self._json(call, 400, openai_error(400, str(exc), ProblemId.OPENAI_REQUEST_INVALID,
                                                  hint(ProblemId.OPENAI_REQUEST_INVALID, call.lang),
                                                  exc.param))

    async def failed(self, call: Call, answer: Answer) -> web.Response:
        await self.flow.finish(call, answer.status, answer.problem)
        extra = {}
        # OpenAI's SDKs wait for Retry-After, not for Google's RetryInfo in the body.
        wait = answer.retry_after_s
        if wait is None and answer.verdict is not None and answer.status == 429:
            wait = answer.verdict.cooldown_s
        if wait is not None:
            extra["Retry-After"] = retry_after(wait)
        return self._json(call, answer.status,
                          from_google(google_error_of(call, answer), answer.status,
                                      answer.problem), extra)
