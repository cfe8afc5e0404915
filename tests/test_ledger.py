"""The ledger through the real SDK: one record per request, committed before the answer ends,
with tokens equal to what the simulator's usageMetadata said and cost priced from them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from google.genai import errors, types

from gemgate.simulator import RunningSimulator, run_simulator
from tests.conftest import TOKEN, RunningGateway, post, run_gateway, sdk

PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
# USD per 1M tokens, written out here rather than read from gemgate.prices, so a wrong
# figure or formula there cannot agree with itself.
FLASH = {"input": 0.30, "output": 2.50}
FLASH_LITE = {"input": 0.10, "output": 0.40}


def expected_cost(usage: dict[str, Any], price: dict[str, float]) -> float:
    output = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
    return (usage["promptTokenCount"] * price["input"] + output * price["output"]) / 1e6


def usage_dict(meta: types.GenerateContentResponseUsageMetadata | None) -> dict[str, Any]:
    assert meta is not None
    return meta.model_dump(by_alias=True, exclude_none=True)


def request_id(response: types.GenerateContentResponse) -> str:
    assert response.sdk_http_response is not None and response.sdk_http_response.headers
    return response.sdk_http_response.headers["x-gemgate-request-id"]


def assert_row_matches(row: dict[str, Any], usage: dict[str, Any], price: dict[str, float]) -> None:
    assert row["prompt_tokens"] == usage["promptTokenCount"]
    assert row["candidates_tokens"] == usage.get("candidatesTokenCount", 0)
    assert row["thoughts_tokens"] == usage.get("thoughtsTokenCount", 0)
    assert row["cached_tokens"] == usage.get("cachedContentTokenCount", 0)
    assert row["total_tokens"] == usage["totalTokenCount"]
    assert row["cost_usd"] == pytest.approx(expected_cost(usage, price), abs=1e-9)


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[RunningSimulator]:
    with run_simulator(chunk_delay_ms=150) as running:
        yield running


@pytest.fixture(scope="module")
def paid(sim: RunningSimulator) -> Iterator[RunningGateway]:
    with run_gateway(sim.url, PAID) as running:
        yield running


def test_plain_request_is_recorded_before_the_answer_arrives(paid: RunningGateway) -> None:
    client = sdk(paid.url, TOKEN)
    response = client.models.generate_content(model="gemini-2.5-flash-lite",
                                              contents="Say hello to the ledger")
    rows = paid.ledger("request_id = ?", (request_id(response),))  # read at once: no waiting
    assert len(rows) == 1
    row = rows[0]
    assert_row_matches(row, usage_dict(response.usage_metadata), FLASH_LITE)
    assert row["cost_usd"] > 0
    assert (row["tenant"], row["project"], row["model_asked"], row["model_used"],
            row["status"], row["stream"], row["cancelled"]) == (
        "team", "sim-paid", "gemini-2.5-flash-lite", "gemini-2.5-flash-lite", 200, 0, 0)
    assert row["key_mask"] == "sim-…ey-1" and row["attempts"] == 1
    assert row["provider"] == "gemini" and row["latency_ms"] > 0


def test_streamed_request_counts_the_final_chunk(paid: RunningGateway) -> None:
    client = sdk(paid.url, TOKEN)
    chunks = list(client.models.generate_content_stream(
        model="gemini-2.5-flash-lite", contents="Write forty words about ledgers"))
    assert len(chunks) > 2
    row = paid.ledger("request_id = ?", (request_id(chunks[0]),))[0]
    assert_row_matches(row, usage_dict(chunks[-1].usage_metadata), FLASH_LITE)
    assert row["stream"] == 1 and row["cancelled"] == 0
    # the first chunk's usage is not the bill: only the last one is
    assert row["candidates_tokens"] > (chunks[0].usage_metadata.candidates_token_count or 0)


def test_thinking_is_billed_as_output(paid: RunningGateway) -> None:
    client = sdk(paid.url, TOKEN)
    response = client.models.generate_content(
        model="gemini-2.5-flash", contents="Think about the price of thought",
        config=types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=1024)))
    usage = usage_dict(response.usage_metadata)
    assert usage["thoughtsTokenCount"] > 0
    row = paid.ledger("request_id = ?", (request_id(response),))[0]
    assert_row_matches(row, usage, FLASH)


def test_cancelled_stream_is_recorded_with_the_usage_seen(slow_sim: RunningSimulator) -> None:
    prompt = "Write a long essay of two hundred words about streams that end early"
    # The simulator answers the same prompt with the same chunks: read them all directly.
    direct_client = sdk(slow_sim.url, "sim-paid-key-1")  # kept: a dropped client closes
    direct = list(direct_client.models.generate_content_stream(
        model="gemini-2.5-flash-lite", contents=prompt))
    assert len(direct) >= 4
    usages = [usage_dict(chunk.usage_metadata) for chunk in direct]
    with run_gateway(slow_sim.url, PAID) as gateway:
        client = sdk(gateway.url, TOKEN)
        stream = client.models.generate_content_stream(model="gemini-2.5-flash-lite",
                                                       contents=prompt)
        first = next(iter(stream))
        stream.close()  # the client stops reading and hangs up
        rid = request_id(first)
        deadline = time.monotonic() + 10
        while not gateway.ledger("request_id = ?", (rid,)) and time.monotonic() < deadline:
            time.sleep(0.05)
        row = gateway.ledger("request_id = ?", (rid,))[0]
    assert row["cancelled"] == 1 and row["status"] == 499 and row["stream"] == 1
    seen = [u for u in usages[:-1] if u.get("candidatesTokenCount", 0) ==
            row["candidates_tokens"]]
    assert seen, f"the ledger's usage is one the stream reported before its end: {row}"
    assert_row_matches(row, seen[0], FLASH_LITE)
    assert row["cost_usd"] < expected_cost(usages[-1], FLASH_LITE)


def test_failed_request_costs_nothing(paid: RunningGateway) -> None:
    client = sdk(paid.url, TOKEN)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="gemini-2.5-flsh", contents="typo")
    row = paid.ledger()[-1]
    assert (row["status"], row["model_asked"], row["cost_usd"], row["total_tokens"]) == (
        404, "gemini-2.5-flsh", 0.0, 0)
    assert row["problem"] == "MODEL_NOT_FOUND"


def test_fallback_is_billed_at_the_model_that_answered(sim: RunningSimulator) -> None:
    requests.post(sim.url + "/_sim/faults", json=[{"kind": "503", "model": "gemini-2.5-pro"}],
                  timeout=5).raise_for_status()
    try:
        with run_gateway(sim.url, PAID) as gateway:
            client = sdk(gateway.url, TOKEN)
            response = client.models.generate_content(model="gemini-2.5-pro",
                                                      contents="Fall back, please")
            row = gateway.ledger("request_id = ?", (request_id(response),))[0]
    finally:
        requests.delete(sim.url + "/_sim/faults", timeout=5)
    assert (row["model_asked"], row["model_used"]) == ("gemini-2.5-pro", "gemini-2.5-flash")
    assert row["attempts"] > 1 and "/503/" in row["attempt_log"]
    assert_row_matches(row, usage_dict(response.usage_metadata), FLASH)


def test_free_tier_requests_cost_nothing_unless_priced(sim: RunningSimulator) -> None:
    free = [{"name": "sim-free", "keys": ["sim-free-key-1"]}]
    for price_free_tier in (False, True):
        with run_gateway(sim.url, free, ledger={"price_free_tier": price_free_tier}) as gateway:
            client = sdk(gateway.url, TOKEN)
            response = client.models.generate_content(model="gemini-2.5-flash-lite",
                                                      contents="free?")
            row = gateway.ledger()[-1]
            expected = expected_cost(usage_dict(response.usage_metadata), FLASH_LITE)
            assert row["cost_usd"] == pytest.approx(expected if price_free_tier else 0.0)


def test_refusals_after_auth_are_recorded_and_unauthenticated_ones_are_not(
        paid: RunningGateway) -> None:
    before = len(paid.ledger())
    assert post(paid.url + "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []},
                key="gg-not-a-token").status_code == 401
    bad_json = post(paid.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                    content=b"{not json", key=TOKEN)
    assert bad_json.status_code == 400
    rows = paid.ledger()
    assert len(rows) == before + 1
    assert (rows[-1]["status"], rows[-1]["problem"], rows[-1]["cost_usd"]) == (
        400, "MALFORMED_JSON", 0.0)
    assert rows[-1]["request_id"] == bad_json.headers["x-gemgate-request-id"]


def test_the_answer_ends_only_after_its_record_is_committed(sim: RunningSimulator) -> None:
    """Another connection holds the database's write lock, so the ledger cannot commit: the
    answer (plain) and the end of the stream must wait for it, then arrive with the record."""
    import sqlite3
    import threading

    with run_gateway(sim.url, PAID, ledger={"commit_timeout_s": 30}) as gateway:
        client = sdk(gateway.url, TOKEN)
        client.models.generate_content(model="gemini-2.5-flash-lite", contents="warm up")
        blocker = sqlite3.connect(gateway.db_path, isolation_level=None)
        for streamed in (False, True):
            blocker.execute("BEGIN IMMEDIATE")  # the write lock, as a busy disk would hold it
            done = threading.Event()
            received: list[Any] = []

            def call(streamed: bool = streamed, done: threading.Event = done,
                     received: list[Any] = received) -> None:
                if streamed:
                    for chunk in client.models.generate_content_stream(
                            model="gemini-2.5-flash-lite", contents="Write thirty words"):
                        received.append(chunk)
                else:
                    received.append(client.models.generate_content(
                        model="gemini-2.5-flash-lite", contents="wait for the ledger"))
                done.set()

            worker = threading.Thread(target=call)
            worker.start()
            assert not done.wait(1.0), "the answer ended before its record was committed"
            if streamed:
                assert received, "the stream's chunks flow; only its end waits"
            blocker.execute("COMMIT")
            assert done.wait(10)
            worker.join()
            assert gateway.ledger("request_id = ?", (request_id(received[0]),))
        blocker.close()
