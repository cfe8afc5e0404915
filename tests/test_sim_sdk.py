"""The simulator through the real google-genai SDK: every call a user makes."""

from __future__ import annotations

import math

import pytest
from google.genai import types

from gemgate.simulator import RunningSimulator
from tests.conftest import sim_sdk


def test_generate_content_returns_text_and_usage(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)  # keep a reference: the SDK closes its pool when collected
    reply = client.models.generate_content(
        model="gemini-2.5-flash-lite", contents="Tell me about the gateway.")
    assert reply.text
    usage = reply.usage_metadata
    assert usage.prompt_token_count == math.ceil(len("Tell me about the gateway.") / 4)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.model_version == "gemini-2.5-flash-lite"
    assert reply.response_id


def test_same_prompt_same_answer_unless_sampled(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    ask = lambda **cfg: client.models.generate_content(  # noqa: E731
        model="gemini-2.0-flash", contents="What is a relay?",
        config=types.GenerateContentConfig(**cfg)).text
    assert ask() == ask()
    assert ask(temperature=1.0, seed=7) == ask(temperature=1.0, seed=7)
    sampled = {ask(temperature=1.0) for _ in range(4)}
    assert len(sampled) > 1


def test_stream_arrives_in_chunks_of_new_parts(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    prompt = "Write 120 words about rivers."
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents=prompt))
    assert len(chunks) >= 3
    assert all(c.usage_metadata and c.usage_metadata.prompt_token_count for c in chunks)
    assert [c.candidates[0].finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    streamed = "".join(c.text or "" for c in chunks)
    whole = client.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    assert streamed == whole.text
    assert len(streamed.split()) == 120
    final = chunks[-1].usage_metadata
    assert final.candidates_token_count == whole.usage_metadata.candidates_token_count
    assert final.thoughts_token_count == whole.usage_metadata.thoughts_token_count


def test_count_tokens_latin_and_cjk(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    latin = client.models.count_tokens(model="gemini-2.5-flash", contents="a" * 400)
    assert latin.total_tokens == 100
    cjk = client.models.count_tokens(model="gemini-2.5-flash", contents="你好世界，欢迎使用网关")
    assert cjk.total_tokens == 10 + 1  # ten ideographs, one token for the comma


def test_embeddings_have_meaning_and_dimensions(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    texts = ["The cat sat on the warm mat.", "A cat was sitting on a warm mat.",
             "Quarterly revenue grew by nine percent."]
    result = client.models.embed_content(model="text-embedding-004", contents=texts)
    vectors = [e.values for e in result.embeddings]
    assert [len(v) for v in vectors] == [768, 768, 768]
    cosine = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731 (unit vectors)
    assert cosine(vectors[0], vectors[1]) > 0.5
    assert abs(cosine(vectors[0], vectors[2])) < 0.2
    short = client.models.embed_content(model="gemini-embedding-001", contents="hello",
                                        config=types.EmbedContentConfig(output_dimensionality=256))
    assert len(short.embeddings[0].values) == 256


def test_models_list_pages_and_get(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    pager = client.models.list(config={"page_size": 3})
    assert len(pager.page) == 3
    names = [m.name for m in pager]
    assert len(names) == len(gemini_simulator.sim.models)
    assert "models/gemini-2.5-flash" in names
    model = client.models.get(model="gemini-2.5-pro")
    assert model.display_name == "Gemini 2.5 Pro"
    assert model.input_token_limit == 1_048_576
    assert "generateContent" in model.supported_actions


@pytest.mark.parametrize("version", ["v1beta", "v1", "v1alpha"])
def test_every_api_version_is_served(gemini_simulator: RunningSimulator, version: str) -> None:
    from tests.conftest import sdk

    client = sdk(gemini_simulator.url, api_version=version)
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    recent = gemini_simulator.stats()["recent"][-1]
    assert recent["method"] == "generateContent"


def test_async_client_streams_too(gemini_simulator: RunningSimulator) -> None:
    import asyncio

    async def collect() -> str:
        client = sim_sdk(gemini_simulator)
        stream = await client.aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Write 40 words about tea.")
        return "".join([chunk.text or "" async for chunk in stream])

    assert len(asyncio.run(collect()).split()) == 40
