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
from gemgate.compat.chat_response import ToolIds, completion
from gemgate.compat.errors import from_google, openai_error
from gemgate.compat.remote_images import RemoteImages
from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.refusal import Refusal, refusal
from gemgate.pipeline.flow import Decoder, Outcome, Pipeline
from gemgate.problems import ProblemId, hint
from gemgate.upstream.providers import Providers

from .gemini import GeminiEdge
from .openai_stream import write_chat_stream
from .replies import gateway_error, gateway_headers, google_error_of, retry_after

GOOGLE_PATH = "/v1beta/openai"
# The only client headers an OpenAI request hands on: gemgate's own, and its deadline.
_GATEWAY_HEADERS = ("X-Server-Timeout", "x-gemgate-priority", "x-gemgate-fallback",
                    "x-gemgate-cache", "Cache-Control", "Idempotency-Key")
Shape = TypeVar("Shape", bound=BaseModel)
_JSON = "application/json"


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

    async def _run(self, request: web.Request, decode: Decoder) -> tuple[Call, Outcome]:
        """An OpenAI request through the pipeline: the client's own headers are OpenAI's, so
        none is forwarded; `decode` checks the body and turns it into a Gemini call."""
        inbound = self.gemini.inbound(request, "v1beta", "")
        headers = request.headers
        inbound.headers = {name: headers[name] for name in _GATEWAY_HEADERS if name in headers}
        call = self.gemini.new_call(request, inbound, surface="openai")
        call.headers = {"Content-Type": _JSON}
        return call, await self.flow.run(call, inbound, decode)

    @staticmethod
    def _parsed(call: Call, shape: type[Shape]) -> Shape | Refusal:
        try:
            return shape.model_validate_json(call.body)
        except ValidationError as exc:
            return _refusal_of(_invalid(exc))

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
        asked: list[ChatRequest] = []

        async def decode(call: Call) -> Refusal | None:
            chat = self._parsed(call, ChatRequest)
            if isinstance(chat, Refusal):
                return chat
            asked.append(chat)
            try:
                body = to_gemini(chat, await self.images.fetch_all(remote_image_urls(chat)))
                self._aim(call, model_id(chat.model),
                          "streamGenerateContent" if chat.stream else "generateContent", body)
            except RequestInvalid as exc:
                return _refusal_of(exc)
            return None

        call, outcome = await self._run(request, decode)
        if outcome.stream is not None:
            return await write_chat_stream(request, call, outcome.stream, self._headers(call),
                                           asked[0].include_usage)
        answer = self._answer(call, outcome)
        if isinstance(answer, web.Response):
            return answer
        reply = completion(orjson.loads(answer.body), call.model, f"chatcmpl-{call.request_id}",
                           int(time.time()), ToolIds(call.request_id))
        return self._json(call, 200, reply)

    # ---- embeddings -----------------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        asked: list[embedding.EmbeddingRequest] = []

        async def decode(call: Call) -> Refusal | None:
            parsed = self._parsed(call, embedding.EmbeddingRequest)
            if isinstance(parsed, Refusal):
                return parsed
            asked.append(parsed)
            try:
                self._aim(call, model_id(parsed.model), "batchEmbedContents",
                          embedding.to_gemini(parsed))
            except RequestInvalid as exc:
                return _refusal_of(exc)
            return None

        call, outcome = await self._run(request, decode)
        answer = self._answer(call, outcome)
        if isinstance(answer, web.Response):
            return answer
        usage = answer.usage or {}
        tokens = int(usage.get("promptTokenCount") or usage.get("totalTokenCount") or 0)
        return self._json(call, 200, embedding.from_gemini(orjson.loads(answer.body), asked[0],
                                                           call.model, tokens))

    # ---- models ---------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.StreamResponse:
        google_style = self._google_style(request)
        if not google_style and not speaks_openai(request):
            return await self.gemini.serve(request, "v1")

        async def decode(call: Call) -> Refusal | None:
            call.method, call.path, call.query = "GET", "models", "pageSize=1000"
            return None

        call, outcome = await self._run(request, decode)
        answer = self._answer(call, outcome)
        if isinstance(answer, web.Response):
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
        name = model_id(request.match_info["model"])
        local = self._local_owner(name)

        async def decode(call: Call) -> Refusal | None:
            call.method, call.path, call.model = "GET", f"models/{name}", name
            if local is not None:  # an alias or a provider's model: gemgate answers itself
                call.local = Answer(200)
            return None

        call, outcome = await self._run(request, decode)
        answer = self._answer(call, outcome)
        if isinstance(answer, web.Response):
            return answer
        return self._json(call, 200, model_list.entry(name, local or "google", google_style))

    def _local_owner(self, name: str) -> str | None:
        """Who owns a name gemgate itself answers for: an alias, or a provider's model."""
        if name in self.aliases:
            return "gemgate"
        link = self.providers.link(name)
        return link.provider.name if link is not None else None

    # ---- answers --------------------------------------------------------------------------

    def _answer(self, call: Call, outcome: Outcome) -> Answer | web.Response:
        """A successful whole answer, or the response that tells the client why not."""
        if outcome.refusal is not None:
            return self._refused(call, outcome.refusal)
        answer = outcome.answer
        assert answer is not None
        if not 200 <= answer.status < 300:
            return self._failed(call, answer)
        return answer

    def _headers(self, call: Call) -> dict[str, str]:
        return gateway_headers(call)

    def _json(self, call: Call, status: int, payload: dict[str, Any],
              extra: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=_dumps(payload),
                            headers={**self._headers(call), **(extra or {})},
                            content_type=_JSON)

    def _refused(self, call: Call, refused: Refusal) -> web.Response:
        extra = {}
        if refused.retry_after_s is not None:
            extra["Retry-After"] = retry_after(refused.retry_after_s)
        if refused.problem == ProblemId.OPENAI_REQUEST_INVALID:
            return self._json(call, 400, openai_error(
                400, refused.message, refused.problem, hint(refused.problem, call.lang),
                refused.param), extra)
        google = gateway_error(refused.status, refused.problem, call.lang,
                               refused.message or None)
        return self._json(call, refused.status,
                          from_google(google, refused.status, refused.problem), extra)

    def _failed(self, call: Call, answer: Answer) -> web.Response:
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


def _refusal_of(exc: RequestInvalid) -> Refusal:
    return refusal(ProblemId.OPENAI_REQUEST_INVALID, str(exc), exc.param)
