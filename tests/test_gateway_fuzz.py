"""Bad input of every kind gets a clear error in Google's shape: never a 500, never a trace."""

from __future__ import annotations

import json
import random

import pytest
import requests

from gemgate.simulator import RunningSimulator
from tests.conftest import ADMIN, TOKEN, RunningGateway

_PATHS = [
    "/v1beta/models/gemini-2.5-flash:generateContent",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    "/v1/models/auto:generateContent", "/v1beta/models/gemini-2.5-flash:countTokens",
    "/v1beta/models/text-embedding-004:batchEmbedContents", "/v1beta/models/:generateContent",
    "/v1beta/models/%00:generateContent", "/v1beta/models/" + "x" * 3000 + ":generateContent",
    "/v1alpha/models", "/v1beta/files/../../etc/passwd", "/v1beta/", "/v1beta/models/a:b:c",
    "/upload/v1beta/files", "/upload/v1beta/files?upload_id=", "/admin/pool", "/v1beta/openai/x",
    "/v1beta/openai/chat/completions", "/v1beta/openai/embeddings",
]
_BODIES: list[object] = [
    None, {}, [], 5, "text", {"contents": None}, {"contents": [None]}, {"contents": [[]]},
    {"contents": [{"parts": None}]}, {"contents": [{"parts": [None, 5, "x"]}]},
    {"contents": [{"parts": [{"text": {"nested": True}}]}]},
    {"contents": "hello", "generationConfig": []},
    {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": -5}},
    {"contents": [{"parts": [{"text": "hi"}]}], "tools": "nope"},
    {"requests": [{"content": None}]}, {"requests": "x"},
    {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": 5}}]}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [5]}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], "tools": [5]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}], "stop": 5},
    {"model": "gemini-2.5-flash", "messages": [{"role": "assistant", "tool_calls": [
        {"function": {"name": "f", "arguments": "{bad"}}]}]},
    {"model": "text-embedding-004", "input": 5}, {"model": "text-embedding-004", "input": [None]},
]


def _garbage(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))


@pytest.mark.parametrize("seed", [20261121, 7, 99])
@pytest.mark.parametrize("target", ["gateway", "simulator"])
def test_garbage_never_breaks_anything(sim: RunningSimulator, gateway: RunningGateway,
                                       seed: int, target: str) -> None:
    base, token = (gateway.url, TOKEN) if target == "gateway" else (sim.url, "sim-free-key-1")
    rng = random.Random(seed)
    for _ in range(400):
        path = rng.choice(_PATHS)
        key = rng.choice([token, token, "", "x", "AIza" + "q" * 35])
        headers = {"x-goog-api-key": key, "Authorization": f"Bearer {key}"}
        if rng.random() < 0.2:
            headers["x-gemgate-priority"] = rng.choice(["high", "urgent", ""])
        if rng.random() < 0.2:
            headers["X-Server-Timeout"] = rng.choice(["1", "abc", "-3", "0"])
        if rng.random() < 0.2:
            headers["Accept-Language"] = rng.choice(["zh", "*", ";q=x", "zh-CN;q=abc"])
        garbage = rng.random() < 0.3
        body = _garbage(rng) if garbage else json.dumps(rng.choice(_BODIES)).encode()
        method = rng.choice(["POST", "POST", "GET", "DELETE", "PATCH"])
        answer = requests.request(method, base + path, data=body, headers=headers,
                                  params={"alt": "sse"} if rng.random() < 0.3 else None,
                                  timeout=30)
        # Bad client input is the client's fault: a 5xx for it is a failure, whoever sent it.
        assert answer.status_code < 500, (path, body[:80], answer.status_code,
                                          answer.text[:300])
        if answer.status_code >= 400:
            error = answer.json()["error"]
            assert error["message"]
            if "type" in error:  # OpenAI's shape, from the simulator's compatibility surface
                assert "/openai/" in path
            else:
                assert isinstance(error["code"], int) and error["status"]


# ---- typed garbage: every field of both request schemas, given every wrong type ---------------

_WRONG: list[object] = [None, 1.5, -1, 2**70, -(2**70), "x", "\u0000", "a\r\nb", True, [], {},
                        [None], [1.5], {"a": None}, "🙂" * 50, [[]], {"text": 5}]
_TEXT = [{"role": "user", "parts": [{"text": "hi"}]}]
_NATIVE_FIELDS: dict[str, object] = {
    "contents": _TEXT, "systemInstruction": {"parts": [{"text": "be brief"}]},
    "tools": [{"functionDeclarations": [{"name": "f"}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {"temperature": 0.5}, "safetySettings": [],
    "cachedContent": "cachedContents/x", "labels": {"a": "b"},
}
_CONFIG_FIELDS = ["temperature", "topP", "topK", "maxOutputTokens", "candidateCount", "seed",
                  "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
                  "thinkingConfig", "responseModalities", "presencePenalty", "frequencyPenalty"]
_CHAT: dict[str, object] = {"model": "gemini-2.5-flash",
                            "messages": [{"role": "user", "content": "hi"}]}
_CHAT_FIELDS = ["model", "messages", "stream", "stream_options", "tools", "tool_choice",
                "response_format", "temperature", "top_p", "max_tokens",
                "max_completion_tokens", "stop", "n", "seed", "presence_penalty",
                "frequency_penalty", "reasoning_effort", "extra_body", "google", "modalities",
                "audio", "logprobs", "logit_bias", "functions", "function_call", "user",
                "metadata", "store", "parallel_tool_calls", "prediction", "service_tier"]
_MESSAGE_FIELDS = ["role", "content", "name", "tool_calls", "tool_call_id"]
_PART_TYPES = ["text", "image_url", "input_audio", "file", "nonsense"]


def _native_bodies() -> list[dict[str, object]]:
    bodies = []
    for field in _NATIVE_FIELDS:
        for wrong in _WRONG:
            bodies.append({"contents": _TEXT, field: wrong})
    for field in _CONFIG_FIELDS:
        for wrong in _WRONG:
            bodies.append({"contents": _TEXT, "generationConfig": {field: wrong}})
    for wrong in _WRONG:
        bodies.append({"contents": [{"role": "user", "parts": [wrong]}]})
        bodies.append({"contents": [{"role": wrong, "parts": [{"text": "hi"}]}]})
    return bodies


def _chat_bodies() -> list[dict[str, object]]:
    bodies = []
    for field in _CHAT_FIELDS:
        for wrong in _WRONG:
            bodies.append({**_CHAT, field: wrong})
    for field in _MESSAGE_FIELDS:
        for wrong in _WRONG:
            bodies.append({**_CHAT, "messages": [{"role": "user", "content": "hi",
                                                  field: wrong}]})
    for kind in _PART_TYPES:
        for wrong in _WRONG:
            part = {"type": kind, kind: wrong}
            bodies.append({**_CHAT, "messages": [{"role": "user", "content": [part]}]})
    for wrong in _WRONG:  # a tool answer after every shape of user turn
        bodies.append({**_CHAT, "messages": [{"role": "user", "content": wrong},
                                             {"role": "tool", "tool_call_id": "x",
                                              "content": "r"}]})
    return bodies


def _check(answer: requests.Response, what: object, openai: bool) -> None:
    assert answer.status_code < 500, (what, answer.status_code, answer.text[:300])
    if answer.status_code >= 400:
        error = answer.json()["error"]
        assert error["message"]
        assert ("type" in error) == openai, (what, error)


def test_typed_garbage_in_every_native_field(gateway: RunningGateway) -> None:
    for path in ("generateContent", "streamGenerateContent?alt=sse", "countTokens"):
        for body in _native_bodies():
            answer = requests.post(f"{gateway.url}/v1beta/models/gemini-2.5-flash:{path}",
                                   json=body, headers={"x-goog-api-key": TOKEN}, timeout=30)
            _check(answer, body, openai=False)


def test_typed_garbage_in_every_openai_field(gateway: RunningGateway) -> None:
    for body in _chat_bodies():
        answer = requests.post(f"{gateway.url}/v1/chat/completions", json=body,
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        _check(answer, body, openai=True)
    for field in ("model", "input", "dimensions", "encoding_format", "user"):
        for wrong in _WRONG:
            body = {"model": "text-embedding-004", "input": "hi", field: wrong}
            answer = requests.post(f"{gateway.url}/v1/embeddings", json=body,
                                   headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            _check(answer, body, openai=True)


@pytest.mark.parametrize("surface", ["/v1beta/models/gemini-2.5-flash:generateContent",
                                     "/v1/chat/completions", "/admin/vkeys"])
def test_a_body_that_lies_about_its_encoding_is_a_400(gateway: RunningGateway,
                                                      surface: str) -> None:
    headers = {"x-goog-api-key": TOKEN, "Content-Encoding": "gzip",
               "Authorization": f"Bearer {ADMIN if surface.startswith('/admin') else TOKEN}",
               "Content-Type": "application/json"}
    answer = requests.post(gateway.url + surface, data=b'{"contents": "hi"}', headers=headers,
                           timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"]
