"""The OpenAI-compatible surface through the real openai SDK, in front of the simulator: chat
(plain, streamed with usage, tools, JSON, images), embeddings, models, and each error class."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
import requests
from aiohttp.abc import AbstractResolver, ResolveResult
from openai import OpenAI
from pydantic import BaseModel

from gemgate.compat.remote_images import JudgingResolver, is_public
from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, RunningGateway, run_gateway, sdk

PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
# A 1×1 PNG: what a chat UI sends for a pasted screenshot, only smaller.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
                         "hQGAhKmMIQAAAABJRU5ErkJggg==")
PIXEL_URL = "data:image/png;base64," + base64.b64encode(PIXEL).decode()
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def client(gateway: RunningGateway, base: str = "/v1", key: str = TOKEN) -> OpenAI:
    """The real openai SDK: only the base URL (and the key) change; no retries of its own."""
    return OpenAI(base_url=gateway.url + base, api_key=key, max_retries=0)


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def gateway(sim: RunningSimulator) -> Iterator[RunningGateway]:
    with run_gateway(sim.url, PAID, aliases={"fast": "gemini-2.5-flash-lite"}) as running:
        yield running


@pytest.fixture(scope="module")
def oai(gateway: RunningGateway) -> OpenAI:
    return client(gateway)


def test_plain_chat_is_answered_and_recorded(oai: OpenAI, gateway: RunningGateway) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash", messages=[{"role": "system", "content": "Be brief."},
                                            *ask("Repeat after me: hello from gemgate")])
    answer = raw.parse()
    assert answer.object == "chat.completion" and answer.model == "gemini-2.5-flash"
    assert answer.choices[0].message.content == "hello from gemgate"
    assert answer.choices[0].finish_reason == "stop"
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 0
    assert usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens or 0
    assert reasoning > 0  # 2.5 Flash thinks, and thinking is billed as completion
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    row = gateway.ledger("request_id = ?", (raw.headers["x-gemgate-request-id"],))[0]
    assert row["provider"] == "gemini" and row["action"] == "generateContent"
    assert row["prompt_tokens"] == usage.prompt_tokens
    assert row["candidates_tokens"] + row["thoughts_tokens"] == usage.completion_tokens
    assert row["thoughts_tokens"] == reasoning and row["cost_usd"] > 0


def test_googles_compatibility_path_and_model_prefix(gateway: RunningGateway) -> None:
    google_style = client(gateway, "/v1beta/openai")
    answer = google_style.chat.completions.create(
        model="models/gemini-2.5-flash-lite", messages=ask("Repeat after me: same path"))
    assert answer.choices[0].message.content == "same path"
    ids = [m.id for m in google_style.models.list()]
    assert "models/gemini-2.5-flash" in ids  # as Google's own endpoint lists them


def test_fields_that_describe_the_client_are_accepted(oai: OpenAI) -> None:
    answer = oai.chat.completions.create(
        model="gemini-2.5-flash-lite", messages=ask("Repeat after me: fine"), user="alice",
        metadata={"team": "a"}, store=False, parallel_tool_calls=True, logprobs=False)
    assert answer.choices[0].message.content == "fine"


def test_aliases_and_generation_options(oai: OpenAI) -> None:
    answer = oai.chat.completions.create(
        model="fast", messages=ask("Write 300 words about gateways"), max_tokens=20,
        temperature=0.2, top_p=0.9, seed=7, n=2)
    assert answer.model == "gemini-2.5-flash-lite"
    assert [c.index for c in answer.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in answer.choices)
    stopped = oai.chat.completions.create(
        model="gemini-2.5-flash-lite", messages=ask("Repeat after me: one two STOP three"),
        stop=["STOP"])
    assert stopped.choices[0].message.content == "one two "


def test_streaming_with_usage_matches_the_whole_answer(oai: OpenAI) -> None:
    messages = ask("Write 60 words about streams")
    whole = oai.chat.completions.create(model="gemini-2.5-flash-lite", messages=messages)
    chunks = list(oai.chat.completions.create(model="gemini-2.5-flash-lite", messages=messages,
                                              stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert whole.usage is not None and last.usage.prompt_tokens == whole.usage.prompt_tokens
    assert last.usage.completion_tokens == whole.usage.completion_tokens


def test_stream_is_well_formed_sse_ending_with_done(gateway: RunningGateway) -> None:
    answer = requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=30,
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "gemini-2.5-flash-lite", "stream": True,
                                 "messages": ask("Write 40 words")})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    raw = answer.content
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw.split(b"\n\n")[:-1]
    assert all(e.startswith(b"data: ") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert not any("usage" in p for p in payloads)  # usage only when asked for


def test_tool_calling_loop(oai: OpenAI, gateway: RunningGateway) -> None:
    messages: list[Any] = ask("What is the weather in Paris?")
    first = oai.chat.completions.create(model="gemini-2.5-flash", messages=messages,
                                        tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    # The thought signature Gemini attached rides along, for the next turn to hand back.
    extra = call.model_extra or {}
    assert extra["extra_content"]["google"]["thought_signature"]
    messages.append(choice.message)
    messages.append({"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"temperature_c": 21, "sky": "clear"})})
    final = oai.chat.completions.create(model="gemini-2.5-flash", messages=messages,
                                        tools=[WEATHER])
    text = final.choices[0].message.content or ""
    assert final.choices[0].finish_reason == "stop"
    assert text.startswith("Based on get_weather:") and '"temperature_c":21' in text
    # The same loop streamed: the call arrives whole, with the same shape and a stable id.
    chunks = list(oai.chat.completions.create(model="gemini-2.5-flash", stream=True,
                                              messages=ask("What is the weather in Oslo?"),
                                              tools=[WEATHER], tool_choice="required"))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1 and deltas[0].index == 0 and deltas[0].id
    assert deltas[0].function is not None
    assert json.loads(deltas[0].function.arguments or "") == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_and_a_tool_answer_without_its_call(oai: OpenAI) -> None:
    plain = oai.chat.completions.create(model="gemini-2.5-flash-lite",
                                        messages=ask("What is the weather in Rome?"),
                                        tools=[WEATHER], tool_choice="none")
    assert plain.choices[0].message.tool_calls is None
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="gemini-2.5-flash-lite", messages=[
            *ask("hi"), {"role": "tool", "tool_call_id": "call_nowhere", "content": "{}"}])
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "messages[1].tool_call_id"


class City(BaseModel):
    name: str
    population: int


def test_json_mode_and_json_schema(oai: OpenAI) -> None:
    loose = oai.chat.completions.create(model="gemini-2.5-flash-lite",
                                        messages=ask("Describe Lisbon as JSON"),
                                        response_format={"type": "json_object"})
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)
    schema = {"type": "object", "properties": {"name": {"type": "string"},
                                               "population": {"type": "integer"}},
              "required": ["name", "population"]}
    strict = oai.chat.completions.create(
        model="gemini-2.5-flash-lite", messages=ask("Lisbon has 545000 people"),
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": schema}})
    data = json.loads(strict.choices[0].message.content or "")
    assert data == {"name": "Lisbon", "population": 545000}
    parsed = oai.chat.completions.parse(model="gemini-2.5-flash-lite", response_format=City,
                                        messages=ask("Porto has 232000 people"))
    assert parsed.choices[0].message.parsed == City(name="Porto", population=232000)


def test_image_input_reaches_gemini_as_inline_data(oai: OpenAI) -> None:
    text_only = oai.chat.completions.create(model="gemini-2.5-flash-lite",
                                            messages=ask("What is in this picture?"))
    with_image = oai.chat.completions.create(model="gemini-2.5-flash-lite", messages=[{
        "role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": PIXEL_URL}}]}])
    assert text_only.usage is not None and with_image.usage is not None
    # Gemini counts a small image as 258 prompt tokens; the simulator does the same.
    assert with_image.usage.prompt_tokens - text_only.usage.prompt_tokens == 258


class _Images(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PIXEL * (4000 if self.path == "/big.png" else 1)
        self.send_response(200)
        self.send_header("Content-Type", "image/png" if self.path != "/page" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _image_message(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "Describe it"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def test_remote_images_only_from_allowed_hosts(sim: RunningSimulator, oai: OpenAI,
                                               image_host: str) -> None:
    with pytest.raises(openai.BadRequestError, match="does not fetch image URLs"):
        oai.chat.completions.create(model="gemini-2.5-flash-lite",
                                    messages=_image_message(image_host + "/cat.png"))
    settings = {"openai": {"remote_images": {"allowed_hosts": ["127.0.0.1", "*.example.com"],
                                             "max_bytes": 20_000}}}
    with run_gateway(sim.url, PAID, **settings) as gateway:
        allowed = client(gateway)
        answer = allowed.chat.completions.create(
            model="gemini-2.5-flash-lite", messages=_image_message(image_host + "/cat.png"))
        assert answer.usage is not None and answer.usage.prompt_tokens > 258
        with pytest.raises(openai.BadRequestError, match="larger than"):
            allowed.chat.completions.create(model="gemini-2.5-flash-lite",
                                            messages=_image_message(image_host + "/big.png"))
        with pytest.raises(openai.BadRequestError, match="not an image"):
            allowed.chat.completions.create(model="gemini-2.5-flash-lite",
                                            messages=_image_message(image_host + "/page"))
        port = image_host.rsplit(":", 1)[1]
        with pytest.raises(openai.BadRequestError, match="allowed hosts"):
            allowed.chat.completions.create(
                model="gemini-2.5-flash-lite",
                messages=_image_message(f"http://localhost:{port}/cat.png"))


@pytest.mark.parametrize("address", ["::127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::7f00:1",
                                     "64:ff9b:1::7f00:1", "2002:7f00:1::1", "::ffff:10.0.0.1",
                                     "fe80::1", "ff02::1", "::", "0.0.0.0", "169.254.169.254",
                                     "224.0.0.1", "10.1.2.3", "100.64.0.1", "::1",
                                     "2001:0:4136:e378:8000:63bf:80ff:fefe"])
def test_every_form_of_a_private_address_is_judged_private(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_stay_public() -> None:
    for address in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert is_public(ipaddress.ip_address(address)), address


def test_wildcard_hosts_never_reach_private_addresses(sim: RunningSimulator,
                                                      image_host: str) -> None:
    port = image_host.rsplit(":", 1)[1]
    settings = {"openai": {"remote_images": {"allowed_hosts": ["*"]}}}
    with run_gateway(sim.url, PAID, **settings) as gateway:
        allowed = client(gateway)
        for url in (f"http://[::127.0.0.1]:{port}/cat.png", f"http://[64:ff9b::7f00:1]:{port}/",
                    f"http://[::ffff:127.0.0.1]:{port}/cat.png", f"http://127.0.0.1:{port}/"):
            with pytest.raises(openai.BadRequestError, match="allowed hosts"):
                allowed.chat.completions.create(model="gemini-2.5-flash-lite",
                                                messages=_image_message(url))
        # A name that resolves to loopback: refused on the address it would connect to.
        with pytest.raises(openai.BadRequestError, match="could not be fetched"):
            allowed.chat.completions.create(
                model="gemini-2.5-flash-lite",
                messages=_image_message(f"http://localhost:{port}/cat.png"))


class _Rebinding(AbstractResolver):
    """A DNS server that answers public first, then loopback (a rebinding attack)."""

    def __init__(self) -> None:
        self.answers = ["93.184.216.34", "127.0.0.1"]

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        address = self.answers.pop(0)
        return [{"hostname": host, "host": address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


def test_the_address_judged_is_the_address_connected_to() -> None:
    async def run() -> None:
        judging = JudgingResolver([], _Rebinding())
        first = await judging.resolve("img.example.com", 80)
        assert [entry["host"] for entry in first] == ["93.184.216.34"]  # what aiohttp dials
        with pytest.raises(OSError):
            await judging.resolve("img.example.com", 80)  # the rebound answer is refused
        trusted = JudgingResolver(["img.example.com"], _Rebinding())
        await trusted.resolve("img.example.com", 80)
        assert (await trusted.resolve("img.example.com", 80))[0]["host"] == "127.0.0.1"

    asyncio.run(run())


def test_reasoning_effort_sets_the_thinking_budget(oai: OpenAI) -> None:
    off = oai.chat.completions.create(model="gemini-2.5-flash", messages=ask("Think: 2+2?"),
                                      reasoning_effort="none")
    assert off.usage is not None and off.usage.completion_tokens_details is not None
    assert off.usage.completion_tokens_details.reasoning_tokens == 0
    low = oai.chat.completions.create(model="gemini-2.5-flash", messages=ask("Think: 2+2?"),
                                      extra_body={"google": {"thinking_config": {
                                          "thinking_budget": 16, "include_thoughts": True}}})
    assert low.usage is not None and low.usage.completion_tokens_details is not None
    assert 0 < (low.usage.completion_tokens_details.reasoning_tokens or 0) <= 16
    assert (low.choices[0].message.model_extra or {}).get("reasoning_content")


def test_embeddings_float_and_base64(oai: OpenAI, gateway: RunningGateway) -> None:
    # The SDK asks for base64 by default and decodes it itself.
    default = oai.embeddings.create(model="gemini-embedding-001", input=["a cat", "a dog"])
    assert [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 3072
    floats = requests.post(gateway.url + "/v1/embeddings", timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "gemini-embedding-001", "input": "a cat",
                                 "dimensions": 256, "encoding_format": "float"}).json()
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 256 and all(isinstance(v, float) for v in vector)
    packed = requests.post(gateway.url + "/v1/embeddings", timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "gemini-embedding-001", "input": "a cat",
                                 "dimensions": 256, "encoding_format": "base64"}).json()
    decoded = struct.unpack("<256f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded == pytest.approx(vector, rel=1e-6)
    assert default.data[0].embedding == pytest.approx(
        oai.embeddings.create(model="gemini-embedding-001", input="a cat").data[0].embedding)
    with pytest.raises(openai.BadRequestError, match="token arrays"):
        oai.embeddings.create(model="gemini-embedding-001", input=[[1, 2, 3]])


def test_models_list_and_retrieve(oai: OpenAI, gateway: RunningGateway) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "gemini-2.5-flash" in ids and "gemini-embedding-001" in ids and "fast" in ids
    one = oai.models.retrieve("gemini-2.5-flash")
    assert one.id == "gemini-2.5-flash" and one.owned_by == "google"
    assert oai.models.retrieve("fast").owned_by == "gemgate"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gemini-9-ultra")
    # The same path in Gemini's own API (api_version v1) still answers Gemini's way.
    native = sdk(gateway.url, TOKEN, api_version="v1")
    names = [m.name for m in native.models.list()]
    assert "models/gemini-2.5-flash" in names


def test_error_classes(oai: OpenAI, gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        client(gateway, key="gg-not-a-real-token").chat.completions.create(
            model="gemini-2.5-flash", messages=ask("hi"))
    assert isinstance(wrong.value.body, dict) and wrong.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as missing:
        oai.chat.completions.create(model="gemini-2.5-flsh", messages=ask("hi"))
    assert "hint" in missing.value.body  # type: ignore[operator]
    with pytest.raises(openai.BadRequestError, match="messages"):
        oai.chat.completions.create(model="gemini-2.5-flash", messages=[])
    with pytest.raises(openai.BadRequestError, match="temperature"):
        oai.chat.completions.create(model="gemini-2.5-flash", messages=ask("hi"),
                                    temperature=5)
    broken = requests.post(gateway.url + "/v1/chat/completions", data=b"{not json", timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert broken.status_code == 400 and broken.json()["error"]["type"] == \
        "invalid_request_error"
    secret, _ = gateway.new_key(name="narrow", models=["gemini-2.5-flash-lite"], rpm=1)
    member = client(gateway, key=secret)
    with pytest.raises(openai.PermissionDeniedError):
        member.chat.completions.create(model="gemini-2.5-pro", messages=ask("hi"))
    member.chat.completions.create(model="gemini-2.5-flash-lite", messages=ask("hi"))
    with pytest.raises(openai.RateLimitError) as limited:
        member.chat.completions.create(model="gemini-2.5-flash-lite", messages=ask("hi"))
    assert int(limited.value.response.headers["Retry-After"]) >= 1
    assert limited.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    ids = [m.id for m in member.models.list()]
    assert ids == ["gemini-2.5-flash-lite", "fast"]  # only what the key may use


def test_googles_own_429_is_a_rate_limit_error(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, PAID, retry={"attempts": 1}, fallback={}) as gateway:
        sim.add_fault(kind="429", model="gemini-2.5-pro", retry_after_s=7)
        try:
            with pytest.raises(openai.RateLimitError) as limited:
                client(gateway).chat.completions.create(model="gemini-2.5-pro",
                                                        messages=ask("hi"))
        finally:
            sim.clear_faults()
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.body["type"] == "rate_limit_error"  # type: ignore[index]


def test_a_mid_stream_error_ends_the_stream_with_an_error_chunk(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, PAID) as gateway:
        sim.add_fault(kind="midstream", after_chunks=1, error_code=503)
        try:
            stream = client(gateway).chat.completions.create(
                model="gemini-2.5-flash-lite", messages=ask("Write 80 words"), stream=True)
            received = []
            with pytest.raises(openai.APIError, match=r"overloaded|interrupted"):
                for chunk in stream:
                    received.append(chunk)
            assert received and received[0].choices[0].delta.content
            sim.add_fault(kind="midstream", after_chunks=1, error_code=503)
            raw = requests.post(gateway.url + "/v1/chat/completions", timeout=30,
                                headers={"Authorization": f"Bearer {TOKEN}"},
                                json={"model": "gemini-2.5-flash-lite", "stream": True,
                                      "messages": ask("Write 80 words")}).content
        finally:
            sim.clear_faults()
        events = raw.split(b"\n\n")[:-1]
        assert events[-1] == b"data: [DONE]"
        error = json.loads(events[-2][6:])["error"]
        assert error["type"] == "server_error" and error["message"]
        rows = gateway.ledger("status != 200")
        assert rows and all(r["stream"] == 1 for r in rows)


BAD_CHATS: list[Any] = [
    [], "text", {"model": "gemini-2.5-flash"}, {"messages": ask("hi")},
    {"model": "gemini-2.5-flash", "messages": "hi"},
    {"model": "gemini-2.5-flash", "messages": [{"role": "bot", "content": "hi"}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": 5}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [7]}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "system", "content": "only system"}]},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "tools": [{"type": "function"}]},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "tool_choice": {"type": "function"}},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "tool_choice": "sometimes"},
    {"model": "gemini-2.5-flash", "messages": ask("hi"),
     "response_format": {"type": "json_schema"}},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "n": 0},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "stop": ["a", "b", "c", "d", "e", "f"]},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "reasoning_effort": "maximal"},
    {"model": "gemini-2.5-flash", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                              "function": {"name": "f", "arguments": "[1]"}}]},
        {"role": "user", "content": "hi"}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}]}]},
    {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "midi"}}]}]},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "logprobs": True},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "logit_bias": {"50256": -100}},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "modalities": ["text", "audio"]},
    {"model": "gemini-2.5-flash", "messages": ask("hi"), "functions": [{"name": "f"}]},
]


@pytest.mark.parametrize("body", BAD_CHATS)
def test_bad_chat_requests_get_a_400_in_openais_shape(gateway: RunningGateway,
                                                      body: Any) -> None:
    answer = requests.post(gateway.url + "/v1/chat/completions", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["hint"]


@pytest.mark.parametrize("body", [{}, {"model": "gemini-embedding-001"},
                                  {"model": "gemini-embedding-001", "input": []},
                                  {"model": "gemini-embedding-001", "input": 5},
                                  {"model": "gemini-embedding-001", "input": ["a"] * 101},
                                  {"model": "gemini-embedding-001", "input": "a",
                                   "encoding_format": "int8"}])
def test_bad_embedding_requests_get_a_400(gateway: RunningGateway, body: Any) -> None:
    answer = requests.post(gateway.url + "/v1/embeddings", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled() -> None:
    from gemgate.simulator import run_simulator

    with run_simulator(chunk_delay_ms=300) as slow, run_gateway(slow.url, PAID) as gateway:
        with requests.post(gateway.url + "/v1/chat/completions", stream=True, timeout=30,
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"model": "gemini-2.5-flash-lite", "stream": True,
                                 "messages": ask("Write 200 words")}) as answer:
            request_id = answer.headers["x-gemgate-request-id"]
            first = next(answer.iter_lines())
            assert first.startswith(b"data: ")
        rows: list[dict[str, Any]] = []
        for _ in range(100):
            rows = gateway.ledger("request_id = ?", (request_id,))
            if rows:
                break
            time.sleep(0.05)
        assert rows and rows[0]["status"] == 499 and rows[0]["cancelled"] == 1
