"""Gemini's Batch API through gemgate with the real google-genai SDK: jobs created inline and
from a file, got, listed, cancelled; each job its creator's alone; results metered at the batch
price (half the interactive one) exactly once, however often they are read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import errors, types

from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, run_gateway, sdk, tune_sim

OTHER = "gg-other-tenant-0001"
TENANTS = [{"name": "team", "token": TOKEN}, {"name": "other", "token": OTHER}]
LINES = [{"contents": [{"parts": [{"text": f"question {n}"}], "role": "user"}]}
         for n in range(3)]
SAME = [LINES[0]] * 3


def test_a_batch_job_through_the_gateway_is_its_creators_and_metered_once(
        batch_sim: RunningSimulator, tmp_path: Path) -> None:
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(batch_sim.url, projects, tenants=TENANTS) as gateway:
        client, other = sdk(gateway.url, TOKEN), sdk(gateway.url, OTHER)
        tune_sim(batch_sim, batch_seconds=3600)
        job = client.batches.create(model="gemini-2.5-flash",
                                    src=[{"contents": line["contents"]} for line in SAME])
        assert job.state == types.JobState.JOB_STATE_PENDING
        # Another tenant can neither see, list nor cancel it.
        for attempt in (lambda: other.batches.get(name=job.name),
                        lambda: other.batches.cancel(name=job.name),
                        lambda: other.batches.delete(name=job.name)):
            with pytest.raises(errors.ClientError) as refused:
                attempt()
            assert refused.value.code == 404
        assert list(other.batches.list()) == []
        assert [j.name for j in client.batches.list()] == [job.name]
        tune_sim(batch_sim, batch_seconds=0)
        for _ in range(3):  # read three times: metered once
            done = client.batches.get(name=job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        usage = [a.response.usage_metadata for a in done.dest.inlined_responses]
        rows = gateway.ledger("action = 'batchResults'")
        assert len(rows) == 1
        row = rows[0]
        assert row["tenant"] == "team" and row["model_used"] == "gemini-2.5-flash"
        assert row["prompt_tokens"] == sum(u.prompt_token_count for u in usage)
        assert row["candidates_tokens"] == sum(u.candidates_token_count for u in usage)
        # Half of what the same requests cost answered at once (the simulator answers the
        # same request the same way: each of the three costs what one interactive call does).
        interactive = client.models.generate_content(model="gemini-2.5-flash",
                                                     contents=SAME[0]["contents"])
        one = gateway.ledger("action = 'generateContent'")[-1]
        assert one["prompt_tokens"] == usage[0].prompt_token_count and interactive.text
        assert one["cost_usd"] > 0
        assert row["cost_usd"] == pytest.approx(3 * one["cost_usd"] / 2, rel=1e-6)
        assert usage[0].total_token_count == usage[2].total_token_count
        # A job cancelled by its creator.
        tune_sim(batch_sim, batch_seconds=3600)
        second = client.batches.create(model="gemini-2.5-flash", src=[{"contents": "x"}])
        client.batches.cancel(name=second.name)
        assert client.batches.get(name=second.name).state == \
            types.JobState.JOB_STATE_CANCELLED


def test_a_file_batch_is_metered_when_its_results_are_downloaded(
        batch_sim: RunningSimulator, tmp_path: Path) -> None:
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(batch_sim.url, projects, tenants=TENANTS) as gateway:
        client, other = sdk(gateway.url, TOKEN), sdk(gateway.url, OTHER)
        tune_sim(batch_sim, batch_seconds=0)
        source = tmp_path / "in.jsonl"
        source.write_bytes(b"".join(orjson.dumps({"key": f"k{n}", "request": line}) + b"\n"
                                    for n, line in enumerate(LINES)))
        uploaded = client.files.upload(file=str(source),
                                       config={"mime_type": "application/jsonl"})
        job = client.batches.create(model="gemini-2.5-flash", src=uploaded.name)
        done = client.batches.get(name=job.name)
        results = done.dest.file_name
        with pytest.raises(errors.ClientError):
            other.files.download(file=results)
        for _ in range(2):
            lines = [orjson.loads(x) for x in client.files.download(file=results).splitlines()]
        assert [x["key"] for x in lines] == ["k0", "k1", "k2"]
        rows = gateway.ledger("action = 'batchResults'")
        assert len(rows) == 1 and rows[0]["prompt_tokens"] == sum(
            x["response"]["usageMetadata"]["promptTokenCount"] for x in lines)


def test_embeddings_and_context_cache_storage_are_metered(sim: Any) -> None:
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(sim.url, projects, tenants=TENANTS) as gateway:
        client = sdk(gateway.url, TOKEN)
        # Google answers embeddings without usageMetadata; their input is billed all the same.
        client.models.embed_content(model="gemini-embedding-001",
                                    contents="a sentence to embed, of some length")
        row = gateway.ledger("action IN ('embedContent', 'batchEmbedContents')")[-1]
        assert row["prompt_tokens"] >= 5 and row["cost_usd"] == pytest.approx(
            row["prompt_tokens"] * 0.15 / 1e6)
        # A context cache: its tokens for its TTL at the storage price ($1.00 per 1M tokens
        # per hour for 2.5 Flash), and a TTL extension for the hours it adds.
        text = "a long document about gateways " * 200
        cache = client.caches.create(
            model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
                contents=[types.Content(role="user", parts=[types.Part(text=text)])],
                ttl="3600s"))
        stored = cache.usage_metadata.total_token_count
        created = gateway.ledger("action = 'cachedContents.storage'")
        assert len(created) == 1 and created[0]["cached_tokens"] == stored
        assert created[0]["cost_usd"] == pytest.approx(stored / 1e6 * 1.00 * 1, rel=1e-3)
        client.caches.update(name=cache.name,
                             config=types.UpdateCachedContentConfig(ttl="7200s"))
        extended = gateway.ledger("action = 'cachedContents.storage'")
        assert len(extended) == 2  # about one more hour: 2 h from now, less the hour charged
        assert extended[1]["cost_usd"] == pytest.approx(stored / 1e6 * 1.00 * 1, rel=1e-2)
        other = sdk(gateway.url, OTHER)
        with pytest.raises(errors.ClientError):
            other.caches.update(name=cache.name,
                                config=types.UpdateCachedContentConfig(ttl="99999s"))
        assert len(gateway.ledger("action = 'cachedContents.storage'")) == 2


def test_interactions_are_their_creators_and_metered_once(sim: Any) -> None:
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(sim.url, projects, tenants=TENANTS) as gateway:
        client, other = sdk(gateway.url, TOKEN), sdk(gateway.url, OTHER)
        first = client.interactions.create(model="gemini-2.5-flash", input="What is a relay?")
        assert first.status == "completed" and first.output_text
        later = client.interactions.create(model="gemini-2.5-flash", input="And a gateway?",
                                           background=True, previous_interaction_id=first.id)
        assert later.status == "in_progress"
        for _ in range(2):
            assert client.interactions.get(id=later.id).status == "completed"
        rows = gateway.ledger("action = 'interactions'")
        assert [r["total_tokens"] for r in rows] == [first.usage.total_tokens,
                                                     client.interactions.get(
                                                         id=later.id).usage.total_tokens]
        assert all(r["cost_usd"] > 0 and r["tenant"] == "team" for r in rows)
        # Another tenant can neither read nor continue them.
        for attempt in (lambda: other.interactions.get(id=first.id),
                        lambda: other.interactions.create(model="gemini-2.5-flash",
                                                          input="steal",
                                                          previous_interaction_id=first.id)):
            with pytest.raises(Exception) as refused:
                attempt()
            assert "404" in str(refused.value) or "NOT_FOUND" in str(refused.value)
