"""The translations between OpenAI's wire format and Gemini's, piece by piece, where the
end-to-end tests cannot easily reach: events split anywhere, tool calls in fragments, histories
with parallel calls."""

from __future__ import annotations

import orjson
import pytest

from gemgate.compat.chat_request import ChatRequest, RequestInvalid, to_gemini
from gemgate.compat.chat_response import ChunkTranslator, ToolIds, completion
from gemgate.compat.provider_chat import StreamToGemini, from_openai, to_openai
from gemgate.compat.sse import EventReader


def test_events_split_anywhere_are_reassembled() -> None:
    stream = (b'data: {"a": "x\xe2\x80\xa8y"}\r\n\r\n'  # U+2028 inside: not a line end
              b': a comment\n\ndata: {"b": 1}\n\ndata: [DONE]\n\n')
    for size in (1, 2, 3, 7, len(stream)):
        reader = EventReader()
        events = []
        for start in range(0, len(stream), size):
            events += reader.feed(stream[start:start + size])
        events += reader.close()
        assert events == [b'{"a": "x\xe2\x80\xa8y"}', b'{"b": 1}', b"[DONE]"]


def test_a_provider_stream_of_fragments_becomes_geminis_events() -> None:
    translator = StreamToGemini("backup/fast")
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Let me check."}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"ci'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7,
                                  "total_tokens": 18,
                                  "completion_tokens_details": {"reasoning_tokens": 2}}},
    ]
    events = [e for chunk in chunks for e in translator.events(chunk)]
    assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "Let me check."}]
    last = events[-1]
    assert len(events) == 2  # the finish waited for the usage that follows it
    assert last["candidates"][0]["finishReason"] == "STOP"
    assert last["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]
    assert last["usageMetadata"] == {"promptTokenCount": 11, "candidatesTokenCount": 5,
                                     "thoughtsTokenCount": 2, "totalTokenCount": 18}
    assert translator.done and translator.close() == []


def test_geminis_history_gets_tool_call_ids_that_match() -> None:
    body = {"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [
        {"role": "user", "parts": [{"text": "Weather in Oslo and Rome?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"c": 5}}},
            {"functionResponse": {"name": "get_weather", "response": {"c": 20}}}]}],
        "generationConfig": {"maxOutputTokens": 50, "responseMimeType": "application/json",
                             "responseSchema": {"type": "OBJECT"}}}
    request = to_openai(body, "deepseek-chat", stream=False)
    messages = request["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    ids = [c["id"] for c in messages[2]["tool_calls"]]
    assert len(set(ids)) == 2
    assert [m["tool_call_id"] for m in messages[3:]] == ids
    assert request["max_tokens"] == 50
    assert request["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_parallel_tool_answers_go_back_as_one_gemini_turn() -> None:
    calls = [{"id": f"c{i}", "type": "function",
              "function": {"name": name, "arguments": "{}"}}
             for i, name in enumerate(["a", "b"])]
    chat = ChatRequest.model_validate({"model": "gemini-2.5-flash", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "plain text"},
        {"role": "tool", "tool_call_id": "c0", "content": '{"ok": true}'}]})
    contents = to_gemini(chat)["contents"]
    assert len(contents) == 3
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "b", "response": {"output": "plain text"}}},
        {"functionResponse": {"name": "a", "response": {"ok": True}}}]


def test_unsupported_content_is_refused_naming_the_field() -> None:
    chat = ChatRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "video_url", "video_url": "x"}]}]})
    with pytest.raises(RequestInvalid) as refused:
        to_gemini(chat)
    assert refused.value.param == "messages[0].content[0]"
    bad_image = ChatRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "image_url",
                                      "image_url": {"url": "data:image/png,notbase64"}}]}]})
    with pytest.raises(RequestInvalid, match="base64 data URL"):
        to_gemini(bad_image)


def test_gemini_answers_become_openai_shapes() -> None:
    response = {"candidates": [{"index": 0, "finishReason": "MAX_TOKENS", "content": {"parts": [
        {"text": "pondering", "thought": True}, {"text": "An answer"}]}}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                          "thoughtsTokenCount": 4, "totalTokenCount": 9,
                          "cachedContentTokenCount": 1}}
    whole = completion(response, "gemini-2.5-flash", "chatcmpl-1", 0, ToolIds("r"))
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "An answer",
                                              "reasoning_content": "pondering"}
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 6
    assert whole["usage"]["prompt_tokens_details"]["cached_tokens"] == 1
    blocked = completion({"promptFeedback": {"blockReason": "SAFETY"}}, "m", "c", 0, ToolIds("r"))
    assert blocked["choices"][0]["finish_reason"] == "content_filter"
    translator = ChunkTranslator("m", "c", 0, ToolIds("r"))
    assert translator.chunks({"promptFeedback": {"blockReason": "SAFETY"}})[0]["choices"][0][
        "finish_reason"] == "content_filter"
    back = from_openai(orjson.loads(orjson.dumps(whole)), "m")
    assert back["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert back["usageMetadata"]["thoughtsTokenCount"] == 4
