"""The legacy google-generativeai SDK (REST mode), the openai SDK on Google's compatibility
surface, raw REST with `?key=`, and the control surface."""

from __future__ import annotations

import warnings

import openai
import pytest
import requests

from gemgate.simulator import RunningSimulator
from tests.conftest import post


def _legacy(sim: RunningSimulator):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import google.generativeai as legacy
    legacy.configure(api_key="sim-free-key-1", transport="rest",
                     client_options={"api_endpoint": sim.url})
    return legacy


def test_legacy_sdk_generate_and_stream(gemini_simulator: RunningSimulator) -> None:
    legacy = _legacy(gemini_simulator)
    model = legacy.GenerativeModel("gemini-2.0-flash")
    reply = model.generate_content("Write 30 words about bridges.")
    assert len(reply.text.split()) == 30
    assert reply.usage_metadata.candidates_token_count > 0
    chunks = list(model.generate_content("Write 60 words about bridges.", stream=True))
    assert len(chunks) >= 3
    assert len("".join(c.text for c in chunks).split()) == 60
    sent = [r for r in gemini_simulator.stats()["recent"] if r["method"] ==
            "streamGenerateContent"]
    assert sent and "genai-py" in sent[-1]["headers"]["x-goog-api-client"]


def test_legacy_sdk_counts_and_embeds(gemini_simulator: RunningSimulator) -> None:
    legacy = _legacy(gemini_simulator)
    assert legacy.GenerativeModel("gemini-2.0-flash").count_tokens("a" * 40).total_tokens == 10
    result = legacy.embed_content(model="models/text-embedding-004", content="hello world")
    assert len(result["embedding"]) == 768


def test_raw_rest_stream_is_sse_without_done(gemini_simulator: RunningSimulator) -> None:
    url = gemini_simulator.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "Write 50 words about ice."}]}]}
    answer = post(url, body, key=None, params={"alt": "sse", "key": "sim-free-key-1"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = [e for e in answer.content.split(b"\r\n\r\n") if e]
    assert len(events) >= 3
    assert all(e.startswith(b"data: {") for e in events)
    assert b"[DONE]" not in answer.content
    assert answer.content.endswith(b"\r\n\r\n")


def _openai(sim: RunningSimulator, key: str = "sim-free-key-1") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=sim.url + "/v1beta/openai/")


def test_openai_chat_plain_and_streamed(gemini_simulator: RunningSimulator) -> None:
    client = _openai(gemini_simulator)
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Write 25 words about owls."}]
    reply = client.chat.completions.create(model="gemini-2.5-flash", messages=messages)
    text = reply.choices[0].message.content
    assert len(text.split()) == 25
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    stream = client.chat.completions.create(model="gemini-2.5-flash", messages=messages,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_openai_tools_embeddings_models_and_errors(gemini_simulator: RunningSimulator) -> None:
    client = _openai(gemini_simulator)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    reply = client.chat.completions.create(
        model="gemini-2.5-flash", tools=tools,
        messages=[{"role": "user", "content": "What is the weather in Lima?"}])
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and '"Lima"' in call.function.arguments
    vectors = client.embeddings.create(model="text-embedding-004", input=["a", "b"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 768
    assert "models/gemini-2.5-flash" in [m.id for m in client.models.list()]
    with pytest.raises(openai.AuthenticationError):
        _openai(gemini_simulator, "wrong").models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gemini-9", messages=[{"role": "user",
                                                                     "content": "x"}])
    gemini_simulator.add_fault(kind="429", count=1)
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(api_key="sim-free-key-1", base_url=gemini_simulator.url + "/v1beta/openai/",
                      max_retries=0).chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}])


def test_control_surface_over_http(gemini_simulator: RunningSimulator) -> None:
    base = gemini_simulator.url
    added = requests.post(base + "/_sim/faults", json={"kind": "503", "count": 1}, timeout=5)
    assert added.status_code == 200 and added.json()[0]["kind"] == "503"
    generate = base + "/v1/models/gemini-2.5-flash:generateContent"
    hello = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert post(generate, hello).status_code == 503
    assert post(generate, hello).status_code == 200
    assert requests.patch(base + "/_sim/config", json={"latency_ms": 5}, timeout=5).ok
    assert requests.patch(base + "/_sim/config", json={"port": 1}, timeout=5).status_code == 400
    moved = requests.post(base + "/_sim/projects/sim-free/state", json={"state": "suspended"},
                          timeout=5)
    assert moved.ok
    assert post(generate, hello).status_code == 403
    stats = requests.get(base + "/_sim/stats", timeout=5).json()
    row = stats["by_key"]["sim-free:sim-…ey-1"]
    assert row["statuses"] == {"503": 1, "200": 1, "403": 1}
    assert stats["by_project"]["sim-free"] == 3
    assert "sim-free-key-1" not in requests.get(base + "/_sim/stats", timeout=5).text
    assert requests.post(base + "/_sim/reset", timeout=5).ok
    assert requests.get(base + "/_sim/stats", timeout=5).json()["requests"] == 0
    bad = requests.post(base + "/_sim/faults", json={"kind": "teapot"}, timeout=5)
    assert bad.status_code == 400
