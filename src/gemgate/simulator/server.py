"""The Gemini-native HTTP surface of the simulator: /v1beta, /v1 and /v1alpha."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import web

from gemgate.google_errors import error_body
from gemgate.simulator import errors, responses, validate
from gemgate.simulator.config import SimModel
from gemgate.simulator.content import Generation, generate
from gemgate.simulator.core import Caller, Simulator
from gemgate.simulator.embeddings import embed
from gemgate.simulator.tokens import count_request, count_text

VERSIONS = "v1beta|v1|v1alpha"
_ERROR_KINDS = frozenset({"429", "500", "503", "504", "reset"})
_LATENCY_KINDS = frozenset({"latency"})
_SEEN_HEADERS = ("user-agent", "x-server-timeout", "x-goog-api-client", "x-gemgate-request-id",
                 "traceparent")
_JSON = "application/json; charset=UTF-8"


def json_response(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json",
                        charset="UTF-8")


def api_key(request: web.Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query.get("key")


def methods_of(model: SimModel) -> list[str]:
    if model.embedding:
        return ["embedContent", "batchEmbedContents", "countTokens"]
    return ["generateContent", "streamGenerateContent", "countTokens", "createCachedContent",
            "batchGenerateContent"]


def model_object(model: SimModel) -> dict[str, Any]:
    shown = {m for m in methods_of(model) if m != "streamGenerateContent"}
    described: dict[str, Any] = {
        "name": f"models/{model.name}",
        "version": model.version,
        "displayName": model.display_name or model.name,
        "description": f"{model.display_name or model.name} (simulated by gemgate)",
        "inputTokenLimit": model.input_token_limit,
        "outputTokenLimit": model.output_token_limit,
        "supportedGenerationMethods": sorted(shown),
    }
    if not model.embedding:
        described.update(temperature=1, topP=0.95, topK=64, maxTemperature=2,
                         thinking=model.thinking)
    return described


def _deterministic(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    temperature = config.get("temperature")
    return config.get("seed") is not None or not (
        isinstance(temperature, int | float) and temperature > 0)


class GeminiSurface:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        # The same deterministic request always gets the same answer, so compute it once.
        self._cached_generation = lru_cache(maxsize=4096)(self._generate_from_raw)
        # Creates a batch job (simulator/batches.py): (request, caller, model) → the answer.
        self.on_batch: Callable[[web.Request, Caller, str],
                                Awaitable[web.Response]] | None = None

    def _generate_from_raw(self, model_name: str, raw: bytes) -> Generation:
        return generate(orjson.loads(raw), self.sim.models[model_name])

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"/{{version:{VERSIONS}}}/models", self.list_models),
            web.get(f"/{{version:{VERSIONS}}}/models/{{target}}", self.get_model),
            web.post(f"/{{version:{VERSIONS}}}/models/{{target}}", self.call_model),
        ]

    def _answer(self, request: web.Request, caller: Caller | None, model: str, method: str,
                answer: tuple[int, bytes]) -> web.Response:
        self._record(request, caller, model, method, answer[0])
        return json_response(*answer)

    def _record(self, request: web.Request, caller: Caller | None, model: str, method: str,
                status: int) -> None:
        seen = {h: request.headers[h] for h in _SEEN_HEADERS if h in request.headers}
        self.sim.record(caller, model, method, status, seen)

    # ---- models ---------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial:
            return self._answer(request, caller, "", "models.list", denial)
        try:
            size = int(request.query.get("pageSize", "50"))
            start = int(base64.urlsafe_b64decode(request.query.get("pageToken") or "MA==") or 0)
        except ValueError:
            return self._answer(request, caller, "", "models.list",
                                errors.invalid_argument("Invalid page token or page size.", ""))
        size = 50 if size <= 0 else min(size, 1000)
        models = list(self.sim.models.values())
        page: dict[str, Any] = {"models": [model_object(m) for m in models[start : start + size]]}
        if start + size < len(models):
            page["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        self._record(request, caller, "", "models.list", 200)
        return json_response(200, orjson.dumps(page))

    async def get_model(self, request: web.Request) -> web.Response:
        version, name = request.match_info["version"], request.match_info["target"]
        caller, denial = self.sim.identify(api_key(request))
        if denial:
            return self._answer(request, caller, name, "models.get", denial)
        model = self.sim.models.get(name)
        if model is None:
            return self._answer(request, caller, name, "models.get",
                                errors.model_not_found(name, version, None))
        self._record(request, caller, name, "models.get", 200)
        return json_response(200, orjson.dumps(model_object(model)))

    # ---- model methods --------------------------------------------------------------------

    async def call_model(self, request: web.Request) -> web.StreamResponse:
        version, target = request.match_info["version"], request.match_info["target"]
        name, _, method = target.partition(":")
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return self._answer(request, caller, name, method, denial or errors.missing_key())
        model = self.sim.models.get(name)
        if model is None or method not in methods_of(model):
            if not method:
                return self._answer(request, caller, name, method,
                                    errors.route_not_found(request.path))
            return self._answer(request, caller, name, method,
                                errors.model_not_found(name, version, method))
        if method == "batchGenerateContent" and self.on_batch is not None:
            return await self.on_batch(request, caller, name)
        raw = await request.read()
        try:
            body = validate.parse_json_object(raw)
            handler, tokens = self._prepare(method, body, model)
        except validate.Invalid as exc:
            return self._answer(request, caller, name, method,
                                errors.invalid_argument(exc.message, exc.field))
        foreign = self.sim.foreign_file(caller, raw)
        if foreign is not None:
            message = (f"You do not have permission to access the File {foreign} or it may not "
                       "exist.")
            return self._answer(request, caller, name, method,
                                (403, error_body(403, message, "PERMISSION_DENIED")))
        if method in ("generateContent", "streamGenerateContent") and \
                self.sim.foreign_cache(caller, body) is not None:
            return self._answer(request, caller, name, method, (403, error_body(
                403, "CachedContent not found (or permission denied)", "PERMISSION_DENIED")))
        stream = method == "streamGenerateContent"
        rule = self.sim.faults.pick(model=name, key=caller.key, project=caller.project.name,
                                    stream=stream, kinds=_LATENCY_KINDS)
        if rule is not None:
            await asyncio.sleep(rule.delay_ms / 1000)
        rule = self.sim.faults.pick(model=name, key=caller.key, project=caller.project.name,
                                    stream=stream, kinds=_ERROR_KINDS)
        if rule is not None and rule.kind == "reset":
            self._record(request, caller, name, method, 0)
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("simulated connection reset")
        if rule is not None:
            answer = errors.injected(int(rule.kind), rule.retry_after_s, name)
            return self._answer(request, caller, name, method, answer)
        if method != "countTokens":
            exhausted = self.sim.quota.admit(caller.project, name, tokens, model.embedding)
            if exhausted is not None:
                return self._answer(request, caller, name, method,
                                    errors.quota_exhausted(exhausted))
        if stream:
            return await self._stream(request, caller, model, body, raw)
        if self.sim.config.latency_ms:
            await asyncio.sleep(self.sim.config.latency_ms / 1000)
        self._record(request, caller, name, method, 200)
        return json_response(200, handler(body, model, raw))

    def _prepare(self, method: str, body: dict[str, Any], model: SimModel) -> tuple[Any, int]:
        """Validates the body for `method`; returns the function that answers it and its input
        token count (what TPM quotas charge)."""
        if method in ("generateContent", "streamGenerateContent"):
            validate.check_generate(body, model)
            return self._generate, count_request(body)
        if method == "countTokens":
            validate.count_tokens_request(body, model)
            return self._count_tokens, 0
        if method == "embedContent":
            text, _ = validate.embed_request(body)
            return self._embed_one, count_text(text)
        if method == "batchEmbedContents":
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise validate.Invalid("* BatchEmbedContentsRequest.requests: requests is not "
                                       "specified\n", "requests")
            texts = [validate.embed_request(r if isinstance(r, dict) else {}, f".requests[{i}]")
                     for i, r in enumerate(requests)]
            return self._embed_batch, sum(count_text(t) for t, _ in texts)
        raise validate.Invalid(f"Method {method} is not supported by the simulator.", "")

    def _generation(self, body: dict[str, Any], model: SimModel, raw: bytes) -> Generation:
        if _deterministic(body):
            return self._cached_generation(model.name, raw)
        return generate(body, model)

    def answer_offline(self, model_name: str, body: Any) -> tuple[int, dict[str, Any]]:
        """One request of a batch job: its answer, or Google's error object for it (a batch
        line is judged alone; quotas and injected faults apply to the job, not its lines)."""
        model = self.sim.models.get(model_name)
        if model is None:
            return 404, {"code": 404, "message": f"models/{model_name} is not found.",
                         "status": "NOT_FOUND"}
        try:
            if not isinstance(body, dict):
                raise validate.Invalid("Invalid JSON payload: the request is not an object", "")
            validate.check_generate(body, model)
        except validate.Invalid as exc:
            return 400, {"code": 400, "message": exc.message, "status": "INVALID_ARGUMENT"}
        raw = orjson.dumps(body)
        return 200, responses.whole(self._generation(body, model, raw), model.name)

    def _generate(self, body: dict[str, Any], model: SimModel, raw: bytes) -> bytes:
        return orjson.dumps(responses.whole(self._generation(body, model, raw), model.name))

    @staticmethod
    def _count_tokens(body: dict[str, Any], model: SimModel, raw: bytes) -> bytes:
        inner = body.get("generateContentRequest") or body.get("generate_content_request") or body
        total = count_request(inner)
        return orjson.dumps({"totalTokens": total, "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": total}]})

    @staticmethod
    def _embedding(request: dict[str, Any], model: SimModel) -> dict[str, Any]:
        text, dims = validate.embed_request(request)
        return {"values": list(embed(text, dims or model.embedding_dim))}

    def _embed_one(self, body: dict[str, Any], model: SimModel, raw: bytes) -> bytes:
        return orjson.dumps({"embedding": self._embedding(body, model)})

    def _embed_batch(self, body: dict[str, Any], model: SimModel, raw: bytes) -> bytes:
        vectors = [self._embedding(r, model) for r in body["requests"]]
        return orjson.dumps({"embeddings": vectors})

    async def _stream(self, request: web.Request, caller: Caller, model: SimModel,
                      body: dict[str, Any], raw: bytes) -> web.StreamResponse:
        sse = request.query.get("alt") == "sse"
        midstream = self.sim.faults.pick(model=model.name, key=caller.key,
                                         project=caller.project.name, stream=True,
                                         kinds=frozenset({"midstream"}))
        response = web.StreamResponse(status=200, headers={
            "Content-Type": "text/event-stream" if sse else _JSON,
            "Content-Disposition": "attachment",
        })
        config = self.sim.config
        if config.ttfb_ms:
            await asyncio.sleep(config.ttfb_ms / 1000)
        await response.prepare(request)
        self._record(request, caller, model.name, "streamGenerateContent", 200)
        frames = [orjson.dumps(c) for c in responses.chunks(self._generation(body, model, raw),
                                                            model.name)]
        if midstream is not None:
            frames = frames[: midstream.after_chunks]
            frames.append(errors.injected(midstream.error_code)[1])
        try:
            for n, frame in enumerate(frames):
                if n and config.chunk_delay_ms:
                    await asyncio.sleep(config.chunk_delay_ms / 1000)
                if sse:
                    await response.write(b"data: " + frame + b"\r\n\r\n")
                else:  # the legacy SDK's stream: one JSON array, written element by element
                    await response.write((b"[" if n == 0 else b"\r\n,") + frame)
            if not sse:
                await response.write(b"]")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client hung up mid-stream, as clients do: nothing left to send
        return response
