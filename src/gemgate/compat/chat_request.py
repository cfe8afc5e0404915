"""An OpenAI chat-completions request, checked, and turned into Gemini's GenerateContentRequest.

What maps where. Fields that only describe the client (user, metadata, store,
parallel_tool_calls, prediction, service_tier) are ignored; fields that would change the answer
and have no Gemini counterpart here (logprobs, logit_bias, audio output, the legacy `functions`)
are refused with a 400 naming them, rather than silently dropped:
- system/developer messages → systemInstruction; user → user turns; assistant → model turns
  (text and tool_calls → functionCall parts, with Gemini's thought signature handed back from
  `extra_content.google.thought_signature`); consecutive tool messages → one user turn of
  functionResponse parts, named by looking the tool_call_id up in the assistant's calls;
- image_url (data: URLs, or remote URLs the config allows, fetched by the edge first),
  input_audio and file (data URLs) → inlineData;
- tools/tool_choice → functionDeclarations (parametersJsonSchema) and functionCallingConfig;
- response_format json_object/json_schema → responseMimeType/responseJsonSchema;
- temperature, top_p, max_(completion_)tokens, stop, n, seed, penalties → generationConfig;
- reasoning_effort → thinkingBudget (2.x) or thinkingLevel (3.x), as Google's own layer does;
- extra_body {"google": {"thinking_config": …, "cached_content": …}} as on Google's endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

# reasoning_effort on Gemini 2.x: a thinking budget in tokens (Google's compat layer: low 1K,
# medium 8K, high 24K, none off).
_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
# On Gemini 3.x thinking is set by level; "none" cannot switch it off there.
_LEVELS = {"none": "low", "minimal": "low", "low": "low", "medium": "high", "high": "high"}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(.*)$", re.DOTALL)
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3", "flac": "audio/flac",
                "ogg": "audio/ogg", "aac": "audio/aac", "aiff": "audio/aiff", "pcm16": "audio/l16"}


class RequestInvalid(ValueError):
    """A request the translation cannot honour; `param` names the field, as OpenAI's errors do."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ToolFunction(_Open):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Open):
    type: Literal["function"]
    function: ToolFunction


class CalledFunction(_Open):
    name: str
    arguments: str = "{}"


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction
    extra_content: dict[str, Any] | None = None


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=8)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)  # JSON's int64
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    google: dict[str, Any] | None = None  # extra_body={"google": {...}}, as Google accepts

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def model_id(model: str) -> str:
    """Google's endpoint accepts `models/gemini-2.5-flash` and `gemini-2.5-flash` alike."""
    return model.removeprefix("models/")


def remote_image_urls(request: ChatRequest) -> list[str]:
    """The http(s) image URLs the edge must fetch before translating."""
    urls = []
    for message in request.messages:
        for part in message.content if isinstance(message.content, list) else ():
            url = _image_url(part)
            if url is not None and not url.startswith("data:"):
                urls.append(url)
    return urls


def _image_url(part: Mapping[str, Any]) -> str | None:
    if part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) else None


def inline_data(url: str, where: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match is None:
        raise RequestInvalid("expected a base64 data URL (data:<mime type>;base64,<data>)", where)
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _parts(content: str | list[dict[str, Any]] | None, where: str,
           fetched: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise RequestInvalid("a text part needs its text, a string", at)
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            url = _image_url(part)
            if url is None:
                raise RequestInvalid("image_url.url must be a string", at)
            parts.append(inline_data(url, at) if url.startswith("data:") else fetched[url])
        elif kind == "input_audio":
            audio = part.get("input_audio")
            audio = audio if isinstance(audio, dict) else {}
            mime = _AUDIO_TYPES.get(str(audio.get("format", "")))
            if mime is None or not isinstance(audio.get("data"), str):
                raise RequestInvalid("input_audio needs base64 data and a format among "
                                     + ", ".join(_AUDIO_TYPES), at)
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, dict) else None
            if not isinstance(data, str):
                raise RequestInvalid("file.file_data must be a base64 data URL", at)
            parts.append(inline_data(data, at))
        else:
            raise RequestInvalid(f"content part type {kind!r} is not supported", at)
    return parts


def _text_only(content: str | list[dict[str, Any]] | None, where: str) -> str:
    if isinstance(content, list):
        texts = [p.get("text") for p in content
                 if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
            raise RequestInvalid("only text parts are accepted here", where)
        return "".join(str(t) for t in texts)
    return content or ""


def _function_call(call: ToolCall, where: str) -> dict[str, Any]:
    try:
        args = orjson.loads(call.function.arguments or "{}")
    except orjson.JSONDecodeError:
        raise RequestInvalid("function.arguments must be a JSON object", where) from None
    if not isinstance(args, dict):
        raise RequestInvalid("function.arguments must be a JSON object", where)
    part: dict[str, Any] = {"functionCall": {"name": call.function.name, "args": args}}
    google = (call.extra_content or {}).get("google") or {}
    if isinstance(google, dict) and isinstance(google.get("thought_signature"), str):
        part["thoughtSignature"] = google["thought_signature"]
    return part


def _tool_result(content: str | list[dict[str, Any]] | None, where: str) -> dict[str, Any]:
    """A tool's output as functionResponse.response, which must be an object: a JSON object
    stays itself, anything else goes under "output" (Gemini's documented key)."""
    text = _text_only(content, where)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


def _contents(request: ChatRequest, fetched: Mapping[str, dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id → function name
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system.append({"text": _text_only(message.content, where)})
        elif message.role == "user":
            contents.append({"role": "user", "parts": _parts(message.content, where, fetched)})
        elif message.role == "assistant":
            parts = _parts(message.content, where, fetched)
            for number, call in enumerate(message.tool_calls or ()):
                names[call.id] = call.function.name
                parts.append(_function_call(call, f"{where}.tool_calls[{number}]"))
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        else:
            name = names.get(message.tool_call_id or "")
            if name is None:
                raise RequestInvalid("tool_call_id names no tool call of an earlier assistant "
                                     "message", f"{where}.tool_call_id")
            part: dict[str, Any] = {"functionResponse": {"name": name,
                                         "response": _tool_result(message.content, where)}}
            turn = contents[-1] if contents else None
            if turn is not None and turn["role"] == "user" and turn["parts"] and \
                    "functionResponse" in turn["parts"][0]:
                contents[-1]["parts"].append(part)  # answers to parallel calls: one turn
            else:
                contents.append({"role": "user", "parts": [part]})
    if not contents:
        raise RequestInvalid("messages must hold at least one user message", "messages")
    return system, contents


def _tool_config(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return None
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise RequestInvalid("tool_choice must be none, auto, required or "
                             '{"type": "function", "function": {"name": …}}', "tool_choice")
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _thinking(request: ChatRequest, model: str) -> dict[str, Any] | None:
    google = request.google or {}
    given = google.get("thinking_config")
    if isinstance(given, dict):
        return {_camel(k): v for k, v in given.items()}
    effort = request.reasoning_effort
    if effort is None:
        return None
    if re.match(r"gemini-[3-9]", model):
        return {"thinkingLevel": _LEVELS[effort]}
    return {"thinkingBudget": _BUDGETS[effort]}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _generation_config(request: ChatRequest, model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for theirs, ours in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed"),
                         ("n", "candidateCount"), ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        value = getattr(request, theirs)
        if value is not None:
            config[ours] = value
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        config["maxOutputTokens"] = limit
    if request.stop:
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop)
        if len(stops) > 5:
            raise RequestInvalid("Gemini accepts at most 5 stop sequences", "stop")
        config["stopSequences"] = stops
    form = request.response_format
    if form is not None and form.type != "text":
        config["responseMimeType"] = "application/json"
        schema = (form.json_schema or {}).get("schema")
        if form.type == "json_schema":
            if not isinstance(schema, dict):
                raise RequestInvalid("json_schema.schema must be a JSON schema object",
                                     "response_format.json_schema.schema")
            config["responseJsonSchema"] = schema
    thinking = _thinking(request, model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _refuse_unserved(request: ChatRequest) -> None:
    extra = request.model_extra or {}
    if extra.get("logprobs") or extra.get("top_logprobs"):
        raise RequestInvalid("logprobs are not served by gemgate's OpenAI surface", "logprobs")
    if extra.get("logit_bias"):
        raise RequestInvalid("Gemini has no logit_bias", "logit_bias")
    modalities = extra.get("modalities")
    if modalities is not None and not (isinstance(modalities, list)
                                       and all(isinstance(m, str) for m in modalities)):
        raise RequestInvalid("modalities must be a list of strings", "modalities")
    if extra.get("audio") or any(m != "text" for m in modalities or ()):
        raise RequestInvalid("only text output is served", "modalities")
    for legacy in ("functions", "function_call"):
        if extra.get(legacy):
            raise RequestInvalid(f"{legacy} is OpenAI's legacy form; send tools and "
                                 "tool_choice instead", legacy)


def to_gemini(request: ChatRequest, fetched: Mapping[str, dict[str, Any]] | None = None
              ) -> dict[str, Any]:
    """The GenerateContentRequest for `request`; `fetched` holds the remote images, by URL,
    already as inlineData parts."""
    _refuse_unserved(request)
    system, contents = _contents(request, fetched or {})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t.function)
                                                   for t in request.tools]}]
    tool_config = _tool_config(request.tool_choice)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(request, model_id(request.model))
    if config:
        body["generationConfig"] = config
    cached = (request.google or {}).get("cached_content")
    if isinstance(cached, str):
        body["cachedContent"] = cached
    return body


def _declaration(function: ToolFunction) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function.name}
    if function.description:
        declaration["description"] = function.description
    if function.parameters:
        declaration["parametersJsonSchema"] = function.parameters
    return declaration
