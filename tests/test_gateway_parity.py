"""The official SDKs cannot tell gemgate from Google: the same suite runs directly against the
simulator and through the gateway in front of it, and must see the same answers and errors."""

from __future__ import annotations

import json
import time
import warnings

import pytest
import requests
from google import genai
from google.genai import errors, types

from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, RunningGateway, sdk


@pytest.fixture(params=["direct", "gateway"])
def client(request: pytest.FixtureRequest, sim: RunningSimulator) -> genai.Client:
    if request.param == "direct":
        return sdk(sim.url, "sim-free-key-1")
    return sdk(request.getfixturevalue("gateway").url, TOKEN)


@pytest.fixture
def both(sim: RunningSimulator, gateway: RunningGateway) -> tuple[genai.Client, genai.Client]:
    return sdk(sim.url, "sim-free-key-1"), sdk(gateway.url, TOKEN)


def test_generate_is_identical(both: tuple[genai.Client, genai.Client]) -> None:
    direct, through = (c.models.generate_content(model="gemini-2.5-flash",
                                                 contents="Explain relays.") for c in both)
    assert through.text == direct.text
    assert through.usage_metadata == direct.usage_metadata
    assert through.candidates[0].finish_reason == direct.candidates[0].finish_reason


def test_stream_is_identical(both: tuple[genai.Client, genai.Client]) -> None:
    prompt = "Write 150 words about lighthouses."
    direct, through = ([c.text for c in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents=prompt)] for client in both)
    assert through == direct and len(through) >= 3


def test_line_separators_survive_the_stream(both: tuple[genai.Client, genai.Client]) -> None:
    tricky = "one\u2028two\u2029three\u0085four \U0001F600 five\r\nsix"
    for client in both:
        chunks = client.models.generate_content_stream(model="gemini-2.0-flash",
                                                       contents=f"Repeat after me: {tricky}")
        assert "".join(c.text for c in chunks) == tricky


def test_count_embed_models(client: genai.Client) -> None:
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="a" * 80).total_tokens \
        == 20
    vectors = client.models.embed_content(model="text-embedding-004", contents=["a", "b c"])
    assert len(vectors.embeddings) == 2
    assert "models/gemini-2.5-pro" in [m.name for m in client.models.list()]
    assert client.models.get(model="gemini-2.5-flash").display_name == "Gemini 2.5 Flash"


def test_async_stream(client: genai.Client) -> None:
    import asyncio

    async def collect() -> str:
        stream = await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Write 33 words about moss.")
        return "".join([c.text or "" async for c in stream])

    assert len(asyncio.run(collect()).split()) == 33


@pytest.mark.parametrize(("model", "config", "code", "status"), [
    ("gemini-2.5-flsh", None, 404, "NOT_FOUND"),
    ("gemini-2.5-pro", types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_budget=0)), 400, "INVALID_ARGUMENT"),
    ("text-embedding-004", None, 404, "NOT_FOUND"),
])
def test_client_errors_pass_through(client: genai.Client, model: str,
                                    config: types.GenerateContentConfig | None, code: int,
                                    status: str) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=model, contents="hi", config=config)
    assert (caught.value.code, caught.value.status) == (code, status)


def test_upstream_error_keeps_googles_shape_and_adds_a_hint(
        both: tuple[genai.Client, genai.Client]) -> None:
    errors_seen = []
    for client in both:
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flsh", contents="hi")
        errors_seen.append(caught.value.details["error"])
    direct, through = errors_seen
    hint = through.pop("hint")
    assert through == direct
    assert "spelling" in hint


@pytest.mark.parametrize("body", [b'{"contents": [', b'{"contents": {"parts": 5}}',
                                  b'{"contents": [{"parts": [{"text": 1}]}]}'])
def test_bad_bodies_are_400(sim: RunningSimulator, gateway: RunningGateway, body: bytes) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    for url, key in ((sim.url, "sim-free-key-1"), (gateway.url, TOKEN)):
        answer = requests.post(url + path, data=body, timeout=10, headers={
            "x-goog-api-key": key, "content-type": "application/json"})
        assert answer.status_code == 400
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_raw_rest_with_query_key_and_bearer(gateway: RunningGateway) -> None:
    path = gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    by_query = requests.post(path, json=body, params={"key": TOKEN}, timeout=10)
    assert by_query.status_code == 200 and by_query.json()["candidates"]
    by_bearer = requests.post(path, json=body, timeout=10,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_bearer.status_code == 200
    sse = requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                        json=body, params={"key": TOKEN, "alt": "sse"}, timeout=10)
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert sse.content.startswith(b"data: {") and b"[DONE]" not in sse.content


def test_legacy_sdk_in_rest_mode(gateway: RunningGateway, sim: RunningSimulator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import google.generativeai as legacy
    answers = []
    for endpoint, key in ((sim.url, "sim-free-key-1"), (gateway.url, TOKEN)):
        legacy.configure(api_key=key, transport="rest", client_options={"api_endpoint": endpoint})
        model = legacy.GenerativeModel("gemini-2.0-flash")
        whole = model.generate_content("Write 20 words about maps.").text
        streamed = "".join(c.text for c in model.generate_content(
            "Write 20 words about maps.", stream=True))
        answers.append((whole, streamed))
    assert answers[0] == answers[1]
    assert answers[1][0] == answers[1][1]


def test_json_mode_and_tools_pass_through(both: tuple[genai.Client, genai.Client]) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json")
    direct, through = (json.loads(c.models.generate_content(
        model="gemini-2.5-flash", contents="Any JSON.", config=config).text) for c in both)
    assert through == direct


def test_file_upload_through_the_gateway(gateway: RunningGateway) -> None:
    import io

    client = sdk(gateway.url, TOKEN)
    data = b"gemgate files " * 50_000  # 700 kB, more than one network read
    uploaded = client.files.upload(file=io.BytesIO(data),
                                   config={"mime_type": "text/plain", "display_name": "notes"})
    assert uploaded.size_bytes == len(data) and uploaded.display_name == "notes"
    # Every later call naming the file must use the project that owns it.
    for _ in range(4):
        assert client.files.get(name=uploaded.name).name == uploaded.name
        reply = client.models.generate_content(model="gemini-2.5-flash",
                                               contents=[uploaded, "Summarise this."])
        assert reply.text


@pytest.mark.parametrize(("kind", "code", "status"), [
    ("500", 500, "INTERNAL"), ("503", 503, "UNAVAILABLE"), ("504", 504, "DEADLINE_EXCEEDED"),
    ("429", 429, "RESOURCE_EXHAUSTED")])
def test_server_errors_that_outlast_retries(sim: RunningSimulator, client: genai.Client,
                                            kind: str, code: int, status: str) -> None:
    """When every attempt fails the same way, the client sees what Google said (for 429: every
    project cooling, with RetryInfo)."""
    sim.add_fault(kind=kind, retry_after_s=1)
    try:
        with pytest.raises(errors.APIError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    finally:
        sim.clear_faults()
        if kind == "429":
            time.sleep(1.1)  # let the shared gateway's projects finish cooling
    assert (caught.value.code, caught.value.status) == (code, status)
    if kind == "429":
        error = caught.value.details["error"]
        assert any(d["@type"].endswith("RetryInfo") for d in error["details"])
