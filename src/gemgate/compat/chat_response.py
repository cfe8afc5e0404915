"""Gemini's answers in OpenAI's shapes: a whole GenerateContentResponse as a chat.completion,
and a stream of GenerateContentResponse events as chat.completion.chunk events.

Tool calls get ids that stay the same between the chunk that announces them and the answer the
client sends back (Gemini's own `functionCall.id` when it gives one). Thought summaries go to
`reasoning_content`, the field most OpenAI-format clients read reasoning from; a function
call's thought signature rides along in `extra_content.google`, as on Google's endpoint, so a
Gemini 3 tool loop can hand it back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
           "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
           "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
           "IMAGE_SAFETY": "content_filter", "LANGUAGE": "content_filter"}


def usage_of(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """usageMetadata as OpenAI's usage: thinking is part of the completion, as it is billed."""
    metadata = metadata or {}
    prompt = int(metadata.get("promptTokenCount") or 0) + int(
        metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(metadata.get("totalTokenCount") or prompt + completion),
            "prompt_tokens_details": {
                "cached_tokens": int(metadata.get("cachedContentTokenCount") or 0)},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def finish_reason(reason: str | None, called_tools: bool) -> str | None:
    if reason is None:
        return None
    if called_tools and reason == "STOP":
        return "tool_calls"
    return _FINISH.get(reason, "stop")


class ToolIds:
    """Ids for the tool calls of one response: derived from the request id, so unique per
    answer, and the same wherever the same call is named."""

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id

    def of(self, call: dict[str, Any], candidate: int, index: int) -> str:
        given = call.get("id")
        if isinstance(given, str) and given:
            return given
        digest = hashlib.sha256(f"{self.request_id}:{candidate}:{index}".encode()).hexdigest()
        return f"call_{digest[:24]}"


def _tool_call(part: dict[str, Any], call_id: str) -> dict[str, Any]:
    call = part["functionCall"]
    entry: dict[str, Any] = {"id": call_id, "type": "function", "function": {
        "name": call.get("name", ""), "arguments": orjson.dumps(call.get("args") or {}).decode()}}
    if isinstance(part.get("thoughtSignature"), str):
        entry["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return entry


def _split(parts: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    """(answer text, thought text, function-call parts) of one candidate's parts."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if "functionCall" in part:
            calls.append(part)
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else text).append(part["text"])
    return "".join(text), "".join(thoughts), calls


def _parts_of(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    parts = (candidate.get("content") or {}).get("parts") or []
    return [p for p in parts if isinstance(p, dict)]


def completion(response: dict[str, Any], model: str, completion_id: str, created: int,
               ids: ToolIds) -> dict[str, Any]:
    choices = []
    candidates = response.get("candidates") or []
    for position, candidate in enumerate(candidates):
        number = int(candidate.get("index", position))
        text, thoughts, calls = _split(_parts_of(candidate))
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if thoughts:
            message["reasoning_content"] = thoughts
        if calls:
            message["tool_calls"] = [_tool_call(p, ids.of(p["functionCall"], number, i))
                                     for i, p in enumerate(calls)]
        choices.append({"index": number, "message": message, "logprobs": None,
                        "finish_reason": finish_reason(candidate.get("finishReason", "STOP"),
                                                       bool(calls))})
    if not candidates:  # the prompt itself was blocked
        choices.append({"index": 0, "message": {"role": "assistant", "content": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage_of(response.get("usageMetadata"))}


class ChunkTranslator:
    """One stream's translation, event by event. It remembers which choices have started, how
    many tool calls each has announced, and the latest usage, for the closing chunks."""

    def __init__(self, model: str, completion_id: str, created: int, ids: ToolIds) -> None:
        self.model, self.completion_id, self.created, self.ids = model, completion_id, created, ids
        self._started: set[int] = set()
        self._tool_count: dict[int, int] = {}
        self.usage: dict[str, Any] | None = None
        self.finished = False  # a finish reason was sent for the first choice

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.completion_id, "object": "chat.completion.chunk",
                "created": self.created, "model": self.model, "choices": choices, **extra}

    def chunks(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """The OpenAI chunks for one Gemini stream event."""
        if isinstance(response.get("usageMetadata"), dict):
            self.usage = response["usageMetadata"]
        out = []
        for position, candidate in enumerate(response.get("candidates") or ()):
            number = int(candidate.get("index", position))
            delta: dict[str, Any] = {}
            if number not in self._started:
                self._started.add(number)
                delta = {"role": "assistant", "content": ""}
            text, thoughts, calls = _split(_parts_of(candidate))
            if text:
                delta["content"] = text
            if thoughts:
                delta["reasoning_content"] = thoughts
            if calls:
                first = self._tool_count.get(number, 0)
                delta["tool_calls"] = [
                    {"index": first + i, **_tool_call(p, self.ids.of(p["functionCall"], number,
                                                                    first + i))}
                    for i, p in enumerate(calls)]
                self._tool_count[number] = first + len(calls)
            if delta:
                out.append(self._chunk([{"index": number, "delta": delta, "logprobs": None,
                                         "finish_reason": None}]))
            reason = finish_reason(candidate.get("finishReason"),
                                   self._tool_count.get(number, 0) > 0)
            if reason is not None:
                self.finished = self.finished or number == 0
                out.append(self._chunk([{"index": number, "delta": {}, "logprobs": None,
                                         "finish_reason": reason}]))
        if not response.get("candidates") and (response.get("promptFeedback") or {}).get(
                "blockReason"):
            self.finished = True
            out.append(self._chunk([{"index": 0, "delta": {"role": "assistant"},
                                     "logprobs": None, "finish_reason": "content_filter"}]))
        return out

    def usage_chunk(self) -> dict[str, Any]:
        """The last chunk of `stream_options.include_usage`: no choices, the whole usage."""
        return self._chunk([], usage=usage_of(self.usage))
