"""Other providers as the last fallback: Gemini (one simulator) in a 503 storm, and answers from
an OpenAI-compatible upstream (another simulator's OpenAI surface, on its own port) — for
native and OpenAI-format clients, whole and streamed, with tools and images — recorded in the
ledger under that provider."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.genai import errors, types
from openai import OpenAI

from gemgate.simulator import RunningSimulator, run_simulator
from tests.conftest import TOKEN, RunningGateway, run_gateway, sdk

PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
PROVIDER_KEY = "sk-other-provider-0001"
PRICE = {"input": 1.0, "output": 4.0}  # USD per 1M tokens, for backup/fast
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
                         "hQGAhKmMIQAAAABJRU5ErkJggg==")
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather in a city",
    parameters=types.Schema(type=types.Type.OBJECT,
                            properties={"city": types.Schema(type=types.Type.STRING)},
                            required=["city"]))])


@pytest.fixture(scope="module")
def other() -> Iterator[RunningSimulator]:
    """The other provider: a second simulator, whose OpenAI surface is all the gateway uses."""
    with run_simulator(projects=[{"name": "other", "tier": "tier1",
                                  "keys": [PROVIDER_KEY]}]) as running:
        yield running


def provider_settings(other: RunningSimulator, key: str = PROVIDER_KEY) -> dict[str, Any]:
    return {
        "providers": [{"name": "backup", "base_url": other.url + "/v1beta/openai",
                       "keys": [key], "models": {"fast": "gemini-2.0-flash"}}],
        "fallback": {"gemini-2.5-flash": ["gemini-2.5-flash-lite", "backup/fast"]},
        "aliases": {"cheap": "backup/fast"},
        "prices": {"backup/fast": PRICE},
        "retry": {"attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02},
    }


@pytest.fixture(scope="module")
def gateway(sim: RunningSimulator, other: RunningSimulator) -> Iterator[RunningGateway]:
    with run_gateway(sim.url, PAID, **provider_settings(other)) as running:
        yield running


@pytest.fixture()
def storm(sim: RunningSimulator) -> Iterator[None]:
    """Every Gemini model answers 503 overloaded."""
    sim.add_fault(kind="503")
    try:
        yield
    finally:
        sim.clear_faults()


def provider_calls(other: RunningSimulator) -> int:
    methods = [row["methods"] for row in other.stats()["by_key"].values()]
    return sum(m.get("openai.chat", 0) for m in methods)


def expected_cost(prompt: int, output: int) -> float:
    return (prompt * PRICE["input"] + output * PRICE["output"]) / 1e6


def row_of(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    return gateway.ledger("request_id = ?", (request_id,))[0]


def rid(response: types.GenerateContentResponse) -> str:
    assert response.sdk_http_response is not None and response.sdk_http_response.headers
    return response.sdk_http_response.headers["x-gemgate-request-id"]


def test_native_client_is_answered_by_the_provider_in_geminis_shape(
        gateway: RunningGateway, other: RunningSimulator, storm: None) -> None:
    before = provider_calls(other)
    client = sdk(gateway.url, TOKEN)
    response = client.models.generate_content(model="gemini-2.5-flash",
                                              contents="Repeat after me: the backup answered")
    assert response.text == "the backup answered"
    headers = response.sdk_http_response.headers  # type: ignore[union-attr]
    assert headers["x-gemgate-model"] == "backup/fast"
    assert provider_calls(other) == before + 1
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    row = row_of(gateway, rid(response))
    assert row["provider"] == "backup" and row["model_used"] == "backup/fast"
    assert row["model_asked"] == "gemini-2.5-flash" and row["project"] is None
    assert row["key_mask"] == "sk-o…0001" and PROVIDER_KEY not in str(row)
    assert row["prompt_tokens"] == usage.prompt_token_count
    assert row["candidates_tokens"] == usage.candidates_token_count
    assert row["cost_usd"] == pytest.approx(
        expected_cost(usage.prompt_token_count, usage.candidates_token_count), abs=1e-12)
    # Both Gemini links were tried (and overloaded) before the provider.
    attempts = row["attempt_log"].split(";")
    assert attempts[0].startswith("sim-paid/503/") and attempts[-1].startswith("backup/200/")


def test_native_stream_falls_back_and_is_metered(gateway: RunningGateway, storm: None) -> None:
    client = sdk(gateway.url, TOKEN)
    whole = client.models.generate_content(model="gemini-2.5-flash",
                                           contents="Write 50 words about backups")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="Write 50 words about backups"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == whole.text
    usage = chunks[-1].usage_metadata
    assert usage is not None and chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    rows = gateway.ledger("stream = 1 AND provider = 'backup'")
    assert rows and rows[-1]["status"] == 200
    assert rows[-1]["prompt_tokens"] == usage.prompt_token_count
    assert rows[-1]["candidates_tokens"] == usage.candidates_token_count
    # Without alt=sse Google streams one JSON array; the provider's answer is framed alike.
    array = requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                          headers={"x-goog-api-key": TOKEN}, timeout=30,
                          json={"contents": [{"parts": [{"text": "Write 50 words about "
                                                                 "backups"}]}]})
    events = array.json()
    assert isinstance(events, list) and len(events) == len(chunks)
    assert "".join(p["text"] for e in events for c in e["candidates"]
                   for p in c["content"]["parts"]) == whole.text
    assert events[-1]["usageMetadata"]["promptTokenCount"] == usage.prompt_token_count


def test_native_tools_and_images_survive_the_translation(gateway: RunningGateway,
                                                         storm: None) -> None:
    client = sdk(gateway.url, TOKEN)
    config = types.GenerateContentConfig(tools=[WEATHER])
    asked = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    first = client.models.generate_content(model="gemini-2.5-flash", contents=[asked],
                                           config=config)
    calls = first.function_calls
    assert calls and calls[0].name == "get_weather" and calls[0].args == {"city": "Paris"}
    answer = types.Part.from_function_response(name="get_weather",
                                               response={"sky": "clear", "temp_c": 20})
    assert first.candidates and first.candidates[0].content
    second = client.models.generate_content(
        model="gemini-2.5-flash", config=config,
        contents=[asked, first.candidates[0].content, types.Content(role="user",
                                                                    parts=[answer])])
    assert (second.text or "").startswith("Based on get_weather:")
    assert '"temp_c":20' in (second.text or "")
    plain = client.models.generate_content(model="gemini-2.5-flash", contents="Describe it")
    pictured = client.models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_bytes(data=PIXEL, mime_type="image/png"), "Describe it"])
    assert plain.usage_metadata and pictured.usage_metadata
    assert (pictured.usage_metadata.prompt_token_count or 0) - (
        plain.usage_metadata.prompt_token_count or 0) == 258


def test_openai_client_falls_back_too(gateway: RunningGateway, storm: None) -> None:
    client = OpenAI(base_url=gateway.url + "/v1", api_key=TOKEN, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Repeat after me: ok"}])
    answer = raw.parse()
    assert answer.choices[0].message.content == "ok" and answer.model == "backup/fast"
    assert row_of(gateway, raw.headers["x-gemgate-request-id"])["provider"] == "backup"
    chunks = list(client.chat.completions.create(
        model="gemini-2.5-flash", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Write 40 words"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    tools = client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[{"type": "function", "function": {
            "name": "get_weather", "parameters": {
                "type": "object", "properties": {"city": {"type": "string"}}}}}])
    assert tools.choices[0].finish_reason == "tool_calls"
    assert tools.choices[0].message.tool_calls
    assert tools.choices[0].message.tool_calls[0].function.arguments == '{"city":"Rome"}'


def test_an_alias_can_target_a_provider_directly(gateway: RunningGateway,
                                                 sim: RunningSimulator,
                                                 other: RunningSimulator) -> None:
    before_google, before_other = sim.stats()["requests"], provider_calls(other)
    client = sdk(gateway.url, TOKEN)
    response = client.models.generate_content(model="cheap",
                                              contents="Repeat after me: straight there")
    assert response.text == "straight there"
    assert sim.stats()["requests"] == before_google
    assert provider_calls(other) == before_other + 1
    with pytest.raises(errors.ClientError) as refused:
        client.models.count_tokens(model="cheap", contents="hello")
    assert refused.value.code == 400 and "generateContent" in str(refused.value)


def test_a_refused_provider_key_is_the_gateways_fault(sim: RunningSimulator,
                                                      other: RunningSimulator,
                                                      storm: None) -> None:
    wrong = "sk-wrong-provider-key-9999"
    with run_gateway(sim.url, PAID, **provider_settings(other, wrong)) as gateway:
        answer = requests.post(
            gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent", timeout=30,
            headers={"x-goog-api-key": TOKEN},
            json={"contents": [{"parts": [{"text": "hi"}]}]})
        assert answer.status_code == 502  # not 401: the client's own key is fine
        error = answer.json()["error"]
        assert error["message"].startswith("backup answered 401")
        assert wrong not in answer.text and error["hint"]
        row = gateway.ledger()[-1]
        assert row["provider"] == "backup" and row["problem"] == "PROVIDER_KEY_INVALID"
        assert row["cost_usd"] == 0
        # The operator sees the refused key resting, masked, in the pool view.
        view = gateway.admin("GET", "/admin/pool").json()["providers"]
        assert view[0]["provider"] == "backup" and view[0]["keys"][0]["key"] == "sk-w…9999"
        assert view[0]["keys"][0]["resting_s"] > 200
        assert wrong not in gateway.admin("GET", "/admin/pool").text


class BrokenProvider:
    """A third-party provider misbehaving mid-stream: a first chunk, then `ending` (an error
    event, or a dropped connection)."""

    def __init__(self, ending: str) -> None:
        from aiohttp import web

        from gemgate.serving import BackgroundServer

        async def chat(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            first = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"role": "assistant",
                                                        "content": "partial "}}]}
            await response.write(b"data: " + json.dumps(first).encode() + b"\n\n")
            if ending == "error":
                await response.write(b'data: {"error": {"message": "upstream melted", '
                                     b'"code": 500}}\n\n')
                await response.write_eof()
            else:
                assert request.transport is not None
                request.transport.close()
            return response

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        self._server = BackgroundServer(lambda: app)
        self.url = self._server.url

    def stop(self) -> None:
        self._server.stop()


@pytest.mark.parametrize("ending", ["error", "dropped"])
def test_a_provider_stream_that_breaks_ends_with_an_error_event(sim: RunningSimulator,
                                                                storm: None,
                                                                ending: str) -> None:
    broken = BrokenProvider(ending)
    settings = {"providers": [{"name": "flaky", "base_url": broken.url + "/v1",
                               "keys": ["sk-flaky-0001"]}],
                "fallback": {"gemini-2.5-flash": ["flaky/any"]},
                "retry": {"attempts": 1}}
    try:
        with run_gateway(sim.url, PAID, **settings) as gateway:
            raw = requests.post(
                gateway.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                params={"alt": "sse"}, headers={"x-goog-api-key": TOKEN}, timeout=30,
                json={"contents": [{"parts": [{"text": "hi"}]}]}).content
            events = [json.loads(e[6:]) for e in raw.split(b"\r\n\r\n") if e.strip()]
            assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "partial "}]
            assert "error" in events[-1] and len(events) == 2
            client = sdk(gateway.url, TOKEN)
            with pytest.raises(errors.APIError):
                for _ in client.models.generate_content_stream(model="gemini-2.5-flash",
                                                               contents="hi"):
                    pass
            row = gateway.ledger()[-1]
            assert row["provider"] == "flaky" and row["stream"] == 1
            if ending == "dropped":
                assert row["status"] == 502 and row["problem"] == "UPSTREAM_UNREACHABLE"
            else:
                assert row["status"] == 500 and row["problem"] == "UPSTREAM_INTERNAL"
    finally:
        broken.stop()
