"""Google's OpenAI-compatible surface (`/v1beta/openai/…`), so gateways can be tested against an
OpenAI-shaped upstream: chat completions (plain, streamed, tools, JSON), embeddings, models."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gemgate.simulator import responses
from gemgate.simulator.config import SimModel
from gemgate.simulator.content import generate
from gemgate.simulator.core import Simulator
from gemgate.simulator.embeddings import embed
from gemgate.simulator.tokens import count_text

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 429: "rate_limit_error", 500: "server_error",
          503: "server_error"}


def openai_error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": None,
                      "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Function(_Shape):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    arguments: str | None = None


class _ToolCall(_Shape):
    id: str | None = None
    type: str = "function"
    function: _Function


class _Message(_Shape):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _Tool(_Shape):
    type: str
    function: _Function


class _ResponseFormat(_Shape):
    type: str
    json_schema: dict[str, Any] | None = None


class ChatRequest(_Shape):
    """The fields of an OpenAI chat request that the compatibility layer reads, type-checked
    so a malformed request gets a 400 naming the field, as OpenAI's API answers."""

    model: str
    messages: list[_Message] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: _ResponseFormat | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=8)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    reasoning_effort: str | None = None


class EmbeddingRequest(_Shape):
    model: str
    input: str | list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1)


def _invalid(exc: ValidationError) -> web.Response:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return openai_error(400, f"Invalid request: {where}: {first['msg']}")


def _text_of(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for item in content or ():
        if item.get("type") == "text":
            parts.append({"text": item.get("text", "")})
        elif item.get("type") == "image_url":
            url = str((item.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                mime, data = url[5:].split(";base64,", 1)
                parts.append({"inlineData": {"mimeType": mime, "data": data}})
    return parts


def to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as the GenerateContentRequest Google's compat layer would make."""
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    called: dict[str, str] = {}  # tool_call_id → function name: tool messages carry only the id
    for message in body.get("messages") or ():
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_of(message.get("content"))
        elif role == "assistant":
            parts = _text_of(message.get("content")) if message.get("content") else []
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                try:
                    args = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    raise ValueError("tool_calls[].function.arguments is not JSON") from None
                parts.append({"functionCall": {"name": function.get("name"), "args": args}})
                called[str(call.get("id"))] = str(function.get("name"))
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        elif role == "tool":
            content = message.get("content")
            try:
                response = orjson.loads(content) if isinstance(content, str) else content
            except orjson.JSONDecodeError:
                response = {"content": content}
            if not isinstance(response, dict):
                response = {"content": response}
            contents.append({"role": "user", "parts": [{"functionResponse": {
                "name": message.get("name") or called.get(str(message.get("tool_call_id")), "tool"),
                "response": response}}]})
        else:
            contents.append({"role": "user", "parts": _text_of(message.get("content"))})
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = [t["function"] for t in body.get("tools") or () if t.get("type") == "function"]
    if tools:
        request["tools"] = [{"functionDeclarations": [
            {"name": t["name"], "description": t.get("description", ""),
             "parametersJsonSchema": t.get("parameters") or {"type": "object"}} for t in tools]}]
        choice = body.get("tool_choice")
        if choice == "required" or isinstance(choice, dict):
            request["toolConfig"] = {"functionCallingConfig": {"mode": "ANY"}}
        elif choice == "none":
            request["toolConfig"] = {"functionCallingConfig": {"mode": "NONE"}}
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("topP", "top_p"), ("seed", "seed"),
                         ("candidateCount", "n")):
        if body.get(theirs) is not None:
            config[ours] = body[theirs]
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    effort = body.get("reasoning_effort")
    if effort:
        budgets = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
        config["thinkingConfig"] = {"thinkingBudget": budgets.get(effort, -1)}
    if config:
        request["generationConfig"] = config
    return request


def _message(parts: list[dict[str, Any]], call_ids: str) -> dict[str, Any]:
    text = "".join(p.get("text", "") for p in parts if "text" in p and not p.get("thought"))
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{call_ids}_{i}", "type": "function",
             "function": {"name": c["name"], "arguments": orjson.dumps(c.get("args", {})).decode()}}
            for i, c in enumerate(calls)]
    return message


def _finish(reason: str, parts: list[dict[str, Any]]) -> str:
    if any("functionCall" in p for p in parts):
        return "tool_calls"
    return {"MAX_TOKENS": "length", "SAFETY": "content_filter"}.get(reason, "stop")


class OpenAISurface:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1beta/openai/chat/completions", self.chat),
            web.post("/v1beta/openai/embeddings", self.embeddings),
            web.get("/v1beta/openai/models", self.models),
            web.get("/v1beta/openai/models/{model:.+}", self.model),
        ]

    def _caller_error(self, request: web.Request, model: str, method: str) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        caller, denial = self.sim.identify(key)
        if denial is not None:
            self.sim.record(caller, model, method, denial[0])
            message = orjson.loads(denial[1])["error"]["message"]
            return openai_error(401 if denial[0] in (400, 403) and caller is None else denial[0],
                                message)
        if caller is None:
            return openai_error(401, "Missing API key")
        fault = self.sim.faults.pick(model=model, key=caller.key, project=caller.project.name,
                                     stream=False, kinds=frozenset({"429", "500", "503", "504"}))
        if fault is not None:
            self.sim.record(caller, model, method, int(fault.kind))
            messages = {429: "Resource has been exhausted (e.g. check quota).",
                        503: "The model is overloaded. Please try again later."}
            return openai_error(int(fault.kind), messages.get(int(fault.kind), "Internal error"))
        self.sim.record(caller, model, method, 200)
        return None

    def _model(self, name: str) -> SimModel | None:
        return self.sim.models.get(name.removeprefix("models/"))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = ChatRequest.model_validate_json(await request.read()).model_dump(
                exclude_none=True)
        except ValidationError as exc:
            return _invalid(exc)
        name = str(body["model"])
        denied = self._caller_error(request, name, "openai.chat")
        if denied is not None:
            return denied
        model = self._model(name)
        if model is None or model.embedding:
            return openai_error(404, f"Model {name} not found", "model_not_found")
        try:
            generation = generate(to_gemini(body), model)
        except ValueError as exc:
            return openai_error(400, f"Invalid request: {exc}")
        created, rid = int(time.time()), responses.response_id()
        completion = generation.candidates[0].candidate_tokens + generation.thoughts_tokens
        usage = {"prompt_tokens": generation.prompt_tokens, "completion_tokens": completion,
                 "total_tokens": generation.prompt_tokens + completion,
                 "completion_tokens_details": {"reasoning_tokens": generation.thoughts_tokens}}
        if body.get("stream"):
            return await self._stream(request, body, generation, name, rid, created, usage)
        choices = [{"index": i, "message": _message(r.parts, f"{rid}{i}"),
                    "finish_reason": _finish(r.finish_reason, r.parts)}
                   for i, r in enumerate(generation.candidates)]
        return web.json_response({"id": rid, "object": "chat.completion", "created": created,
                                  "model": name, "choices": choices, "usage": usage},
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _stream(self, request: web.Request, body: dict[str, Any], generation: Any,
                      name: str, rid: str, created: int,
                      usage: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        reply = generation.candidates[0]

        async def send(delta: dict[str, Any], finish: str | None,
                       extra: dict[str, Any] | None = None) -> None:
            chunk = {"id": rid, "object": "chat.completion.chunk", "created": created,
                     "model": name, "choices": [{"index": 0, "delta": delta,
                                                 "finish_reason": finish}], **(extra or {})}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        message = _message(reply.parts, rid)
        await send({"role": "assistant", "content": ""}, None)
        if message.get("tool_calls"):
            calls = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
            await send({"tool_calls": calls}, None)
        text = message.get("content") or ""
        step = max(1, len(text) // 4)
        for start in range(0, len(text), step):
            await send({"content": text[start : start + step]}, None)
        await send({}, _finish(reply.finish_reason, reply.parts))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = {"id": rid, "object": "chat.completion.chunk", "created": created,
                     "model": name, "choices": [], "usage": usage}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        try:
            parsed = EmbeddingRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            return _invalid(exc)
        inputs, name = parsed.input, parsed.model
        denied = self._caller_error(request, name, "openai.embeddings")
        if denied is not None:
            return denied
        model = self._model(name)
        if model is None or not model.embedding:
            return openai_error(404, f"Model {name} not found", "model_not_found")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        dims = parsed.dimensions or model.embedding_dim
        data = [{"object": "embedding", "index": i, "embedding": list(embed(str(t), dims))}
                for i, t in enumerate(texts)]
        tokens = sum(count_text(str(t)) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": name,
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                                 dumps=lambda o: orjson.dumps(o).decode())

    def _model_entry(self, model: SimModel) -> dict[str, Any]:
        return {"id": f"models/{model.name}", "object": "model", "created": 0,
                "owned_by": "google"}

    async def models(self, request: web.Request) -> web.Response:
        denied = self._caller_error(request, "", "openai.models")
        if denied is not None:
            return denied
        data = [self._model_entry(m) for m in self.sim.models.values()]
        return web.json_response({"object": "list", "data": data})

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        denied = self._caller_error(request, name, "openai.models")
        if denied is not None:
            return denied
        model = self._model(name)
        if model is None:
            return openai_error(404, f"Model {name} not found", "model_not_found")
        return web.json_response(self._model_entry(model))
