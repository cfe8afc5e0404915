"""Gemini's GenerateContentRequest told to an OpenAI-compatible provider, and its answers told
back in Gemini's shape — so a native client whose request falls back to another provider still
reads a GenerateContentResponse (text, images, tools, usage), whole or streamed.

Gemini's history has no tool-call ids; each function call gets one from its turn and position,
and each functionResponse takes the id of the first unanswered call of that name in the
preceding model turn.
"""

from __future__ import annotations

from typing import Any

import orjson

from gemgate.shapes import items, mapping

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY",
           "tool_calls": "STOP", "function_call": "STOP"}
_CHOICE = {"NONE": "none", "AUTO": "auto", "ANY": "required", "VALIDATED": "auto"}


def _get(fields: dict[str, Any], camel: str, snake: str) -> Any:
    """Gemini's JSON accepts both spellings of every field."""
    return fields.get(camel, fields.get(snake))


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p["text"]) for p in parts if isinstance(p.get("text"), str)
                   and not p.get("thought"))


def _content_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A user turn's parts as OpenAI content: plain text when that is all there is."""
    out: list[dict[str, Any]] = []
    for part in parts:
        inline = _get(part, "inlineData", "inline_data")
        if isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
        elif isinstance(inline, dict):
            mime = _get(inline, "mimeType", "mime_type") or "application/octet-stream"
            url = f"data:{mime};base64,{inline.get('data', '')}"
            out.append({"type": "image_url", "image_url": {"url": url}} if
                       str(mime).startswith("image/") else
                       {"type": "file", "file": {"file_data": url}})
    if all(p["type"] == "text" for p in out):
        return "".join(p["text"] for p in out)
    return out


def _schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style `parameters` (types in capitals) as JSON Schema."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _schema(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_schema(item) for item in schema]
    return schema


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = _get(body, "systemInstruction", "system_instruction")
    if isinstance(system, dict) and _text(system.get("parts") or []):
        messages.append({"role": "system", "content": _text(system["parts"])})
    open_calls: list[tuple[str, str]] = []  # (name, id) of the last model turn's calls
    for turn, content in enumerate(items(body.get("contents"))):
        parts = [p for p in items(mapping(content).get("parts")) if isinstance(p, dict)]
        if content.get("role") == "model":
            calls = [_get(p, "functionCall", "function_call") for p in parts]
            called = [c for c in calls if isinstance(c, dict)]
            open_calls = [(str(c.get("name", "")), f"call_{turn}_{i}")
                          for i, c in enumerate(called)]
            tool_calls = [{"id": call_id, "type": "function", "function": {
                "name": name, "arguments": orjson.dumps(c.get("args") or {}).decode()}}
                for (name, call_id), c in zip(open_calls, called, strict=True)]
            message: dict[str, Any] = {"role": "assistant", "content": _text(parts) or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            messages.append(message)
            continue
        answers = [_get(p, "functionResponse", "function_response") for p in parts]
        for answer in (a for a in answers if isinstance(a, dict)):
            name = str(answer.get("name", ""))
            match = next((pair for pair in open_calls if pair[0] == name), None)
            if match is not None:
                open_calls.remove(match)
            messages.append({"role": "tool", "tool_call_id": match[1] if match else name,
                             "content": orjson.dumps(answer.get("response") or {}).decode()})
        rest = [p for p in parts if not _get(p, "functionResponse", "function_response")]
        if rest:
            messages.append({"role": "user", "content": _content_parts(rest)})
    return messages


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = []
    for tool in body.get("tools") or ():
        for declaration in _get(tool, "functionDeclarations", "function_declarations") or ():
            parameters = _get(declaration, "parametersJsonSchema", "parameters_json_schema")
            if parameters is None:
                parameters = _schema(declaration.get("parameters"))
            function = {"name": declaration.get("name", ""),
                        "description": declaration.get("description", ""),
                        "parameters": parameters or {"type": "object", "properties": {}}}
            tools.append({"type": "function", "function": function})
    return tools


def _options(config: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("topP", "top_p"), ("seed", "seed"),
                         ("maxOutputTokens", "max_tokens"), ("candidateCount", "n"),
                         ("stopSequences", "stop"), ("presencePenalty", "presence_penalty"),
                         ("frequencyPenalty", "frequency_penalty")):
        value = config.get(ours, config.get(_snake(ours)))
        if value is not None:
            options[theirs] = value
    if _get(config, "responseMimeType", "response_mime_type") == "application/json":
        schema = (_get(config, "responseJsonSchema", "response_json_schema")
                  or _schema(_get(config, "responseSchema", "response_schema")))
        options["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
            if schema else {"type": "json_object"})
    return options


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def to_openai(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    request: dict[str, Any] = {"model": model, "messages": _messages(body)}
    tools = _tools(body)
    if tools:
        request["tools"] = tools
        calling = _get(_get(body, "toolConfig", "tool_config") or {},
                       "functionCallingConfig", "function_calling_config") or {}
        mode = str(calling.get("mode", "AUTO")).upper()
        allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
        request["tool_choice"] = ({"type": "function", "function": {"name": allowed[0]}}
                                  if mode == "ANY" and len(allowed) == 1
                                  else _CHOICE.get(mode, "auto"))
    request.update(_options(_get(body, "generationConfig", "generation_config") or {}))
    if stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


def usage_metadata(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    metadata = {"promptTokenCount": prompt, "candidatesTokenCount": completion - reasoning,
                "totalTokenCount": int(usage.get("total_tokens") or prompt + completion)}
    if reasoning:
        metadata["thoughtsTokenCount"] = reasoning
    if cached:
        metadata["cachedContentTokenCount"] = cached
    return metadata


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        args = orjson.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except orjson.JSONDecodeError:
        return {"arguments": raw}  # the provider's model wrote broken JSON: keep what it said
    return args if isinstance(args, dict) else {"value": args}


def _call_part(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    part = {"functionCall": {"name": function.get("name", ""),
                             "args": _arguments(function.get("arguments"))}}
    return part


def from_openai(completion: dict[str, Any], model: str) -> dict[str, Any]:
    candidates = []
    for position, choice in enumerate(completion.get("choices") or ()):
        message = choice.get("message") or {}
        parts: list[dict[str, Any]] = []
        if message.get("reasoning_content"):
            parts.append({"text": str(message["reasoning_content"]), "thought": True})
        if message.get("content"):
            parts.append({"text": str(message["content"])})
        parts += [_call_part(c) for c in message.get("tool_calls") or ()]
        candidates.append({"content": {"role": "model", "parts": parts},
                           "finishReason": _FINISH.get(str(choice.get("finish_reason")), "STOP"),
                           "index": int(choice.get("index", position))})
    response: dict[str, Any] = {"candidates": candidates, "modelVersion": model}
    usage = usage_metadata(completion.get("usage"))
    if usage is not None:
        response["usageMetadata"] = usage
    return response


class StreamToGemini:
    """A provider's chat.completion.chunk events as Gemini stream events. Text goes out as it
    comes; tool calls arrive in argument fragments, so they go out whole with the finish; the
    finishing event waits for the usage chunk that follows it, as Google's last event carries
    both."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}  # choice → index → call
        self._finishing: dict[str, Any] | None = None
        self.done = False

    def events(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        candidates = []
        for choice in chunk.get("choices") or ():
            number = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            parts: list[dict[str, Any]] = []
            if delta.get("reasoning_content"):
                parts.append({"text": str(delta["reasoning_content"]), "thought": True})
            if delta.get("content"):
                parts.append({"text": str(delta["content"])})
            for fragment in delta.get("tool_calls") or ():
                self._merge(number, fragment)
            reason = choice.get("finish_reason")
            if reason:
                calls = self._calls.pop(number, {})
                parts += [_call_part(calls[i]) for i in sorted(calls)]
            if parts or reason:
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts},
                                             "index": number}
                if reason:
                    candidate["finishReason"] = _FINISH.get(str(reason), "STOP")
                candidates.append(candidate)
        usage = usage_metadata(chunk.get("usage"))
        if candidates:
            event = {"candidates": candidates, "modelVersion": self.model}
            if any("finishReason" in c for c in candidates):
                out += self._flush()
                self._finishing = event
            else:
                out.append(event)
        if usage is not None:
            final = self._finishing or {"candidates": [], "modelVersion": self.model}
            final["usageMetadata"] = usage
            self._finishing = final
            out += self._flush()
        return out

    def _merge(self, choice: int, fragment: dict[str, Any]) -> None:
        calls = self._calls.setdefault(choice, {})
        call = calls.setdefault(int(fragment.get("index", len(calls))),
                                {"function": {"name": "", "arguments": ""}})
        function = fragment.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""

    def _flush(self) -> list[dict[str, Any]]:
        event, self._finishing = self._finishing, None
        if event is None:
            return []
        self.done = self.done or any("finishReason" in c for c in event["candidates"])
        return [event]

    def close(self) -> list[dict[str, Any]]:
        """At the provider's [DONE]: the finishing event, if no usage chunk came after it."""
        return self._flush()
