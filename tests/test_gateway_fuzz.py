"""Bad input of every kind gets a clear error in Google's shape: never a 500, never a trace."""

from __future__ import annotations

import json
import random

import pytest
import requests

from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, RunningGateway

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
        assert answer.status_code < 500 or answer.status_code in (502, 503, 504), (
            path, body[:80], answer.status_code, answer.text[:300])
        if answer.status_code >= 400:
            error = answer.json()["error"]
            assert error["message"]
            if "type" in error:  # OpenAI's shape, from the simulator's compatibility surface
                assert "/openai/" in path
            else:
                assert isinstance(error["code"], int) and error["status"]
