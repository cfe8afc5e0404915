"""The response cache through the real SDKs and raw HTTP: replay faithful to the byte and to the
event, policies, tenant walls, single flight, Redis shared by two gateways, the ledger."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from google.genai import types
from openai import OpenAI

from gemgate.cache.entry import entry_from
from gemgate.cache.store import CacheKey, MemoryCache
from gemgate.simulator import run_simulator
from tests.conftest import TOKEN, run_gateway, sdk
from tests.shared_backends import redis_prefix, redis_state

FLASH = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"
STREAM_SSE = f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
STREAM_ARRAY = f"/v1beta/models/{FLASH}:streamGenerateContent"
OTHER = "gg-other-tenant-01"
TENANTS = [{"name": "team", "token": TOKEN}, {"name": "other", "token": OTHER}]


def _body(text: str = "Tell me about harbours.", temperature: float = 0) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"temperature": temperature}}


def _post(url: str, path: str, body: Any, token: str = TOKEN,
          **headers: str) -> requests.Response:
    return requests.post(url + path, json=body, timeout=30,
                         headers={"x-goog-api-key": token, **headers})


def _upstream(sim: Any) -> int:
    return sum(int(row["requests"]) for row in sim.stats()["by_key"].values())


@pytest.fixture(scope="module")
def stack() -> Any:
    with run_simulator() as sim, run_gateway(sim.url, tenants=TENANTS) as gateway:
        yield sim, gateway


def test_a_whole_answer_is_replayed_byte_for_byte(stack: Any) -> None:
    sim, gateway = stack
    body = _body("byte for byte")
    first = _post(gateway.url, GENERATE, body)
    before = _upstream(sim)
    second = _post(gateway.url, GENERATE, body)
    assert first.headers["x-gemgate-cache"] == "MISS"
    assert second.headers["x-gemgate-cache"] == "HIT" and "Age" in second.headers
    assert second.content == first.content
    assert _upstream(sim) == before  # the hit never went upstream
    # Field names spelled the other way (snake_case) are the same request.
    snake = {"contents": body["contents"], "generation_config": {"temperature": 0}}
    assert _post(gateway.url, GENERATE, snake).headers["x-gemgate-cache"] == "HIT"


@pytest.mark.parametrize("path", [STREAM_SSE, STREAM_ARRAY])
def test_a_stream_is_replayed_event_for_event(stack: Any, path: str) -> None:
    sim, gateway = stack
    body = _body(f"stream me, {path[-3:]}")
    first = _post(gateway.url, path, body)
    before = _upstream(sim)
    second = _post(gateway.url, path, body)
    assert (first.headers["x-gemgate-cache"], second.headers["x-gemgate-cache"]) == (
        "MISS", "HIT")
    assert _events(second.content, path) == _events(first.content, path)
    assert second.content == first.content  # the same framing as Google's, byte for byte
    assert _upstream(sim) == before


def _events(raw: bytes, path: str) -> list[Any]:
    if "alt=sse" in path:
        return [json.loads(line[6:]) for line in raw.decode().splitlines()
                if line.startswith("data: ")]
    return list(json.loads(raw))


def test_a_stream_entry_answers_a_whole_call_and_the_other_way(stack: Any) -> None:
    _, gateway = stack
    streamed = _post(gateway.url, STREAM_SSE, _body("streamed first"))
    text = "".join(p.get("text", "") for e in _events(streamed.content, STREAM_SSE)
                   for p in e["candidates"][0]["content"]["parts"] if not p.get("thought"))
    whole = _post(gateway.url, GENERATE, _body("streamed first"))
    assert whole.headers["x-gemgate-cache"] == "HIT"
    parts = whole.json()["candidates"][0]["content"]["parts"]
    assert "".join(p.get("text", "") for p in parts if not p.get("thought")) == text
    assert whole.json()["candidates"][0]["finishReason"] == "STOP"
    # A whole entry served as a stream: one event, correctly framed, in both framings.
    _post(gateway.url, GENERATE, _body("whole first"))
    for path in (STREAM_SSE, STREAM_ARRAY):
        replay = _post(gateway.url, path, _body("whole first"))
        assert replay.headers["x-gemgate-cache"] == "HIT"
        assert _events(replay.content, path)[0]["candidates"][0]["finishReason"] == "STOP"


def test_the_sdks_read_hits_as_answers(stack: Any) -> None:
    _, gateway = stack
    client = sdk(gateway.url, TOKEN)
    config = types.GenerateContentConfig(temperature=0)
    first = client.models.generate_content(model=FLASH, contents="sdk", config=config)
    second = client.models.generate_content(model=FLASH, contents="sdk", config=config)
    assert second.text == first.text
    chunks = [c.text for c in client.models.generate_content_stream(
        model=FLASH, contents="sdk stream", config=config)]
    again = [c.text for c in client.models.generate_content_stream(
        model=FLASH, contents="sdk stream", config=config)]
    assert again == chunks and len(chunks) > 1
    openai = OpenAI(base_url=gateway.url + "/v1", api_key=TOKEN)
    asked = {"model": FLASH, "temperature": 0,
             "messages": [{"role": "user", "content": "openai hello"}]}
    one = openai.chat.completions.with_raw_response.create(**asked)  # type: ignore[call-overload]
    two = openai.chat.completions.with_raw_response.create(**asked)  # type: ignore[call-overload]
    assert (one.headers["x-gemgate-cache"], two.headers["x-gemgate-cache"]) == ("MISS", "HIT")
    assert two.parse().choices[0].message.content == one.parse().choices[0].message.content
    streamed = ["".join(c.choices[0].delta.content or "" for c in openai.chat.completions.create(
        stream=True, **asked)) for _ in range(2)]  # type: ignore[call-overload]
    assert streamed[0] == streamed[1] == one.parse().choices[0].message.content


def test_policies_per_request_and_by_mode(stack: Any) -> None:
    sim, gateway = stack
    warm = _body("policies")
    _post(gateway.url, GENERATE, warm)
    assert _post(gateway.url, GENERATE, warm).headers["x-gemgate-cache"] == "HIT"
    before = _upstream(sim)
    refreshed = _post(gateway.url, GENERATE, warm, **{"x-gemgate-cache": "refresh"})
    assert refreshed.headers["x-gemgate-cache"] == "REFRESH" and _upstream(sim) == before + 1
    no_cache = _post(gateway.url, GENERATE, warm, **{"Cache-Control": "no-cache"})
    assert no_cache.headers["x-gemgate-cache"] == "REFRESH"
    off = _post(gateway.url, GENERATE, warm, **{"x-gemgate-cache": "off"})
    assert off.headers["x-gemgate-cache"] == "BYPASS"
    stored_not = _body("never stored")
    _post(gateway.url, GENERATE, stored_not, **{"Cache-Control": "no-store"})
    assert _post(gateway.url, GENERATE, stored_not).headers["x-gemgate-cache"] == "MISS"
    time.sleep(1.1)
    old = _post(gateway.url, GENERATE, stored_not, **{"Cache-Control": "max-age=1"})
    assert old.headers["x-gemgate-cache"] == "MISS"  # the entry is over a second old
    creative = _body("a poem", temperature=0.9)
    assert _post(gateway.url, GENERATE, creative).headers["x-gemgate-cache"] == "BYPASS"
    assert _post(gateway.url, GENERATE, creative).headers["x-gemgate-cache"] == "BYPASS"


def test_another_tenant_never_gets_an_entry(stack: Any) -> None:
    _, gateway = stack
    body = _body("tenant walls")
    _post(gateway.url, GENERATE, body)
    assert _post(gateway.url, GENERATE, body).headers["x-gemgate-cache"] == "HIT"
    assert _post(gateway.url, GENERATE, body, OTHER).headers["x-gemgate-cache"] == "MISS"


def test_twenty_identical_concurrent_misses_make_one_upstream_call() -> None:
    with run_simulator(latency_ms=300) as sim, run_gateway(sim.url) as gateway:
        body = _body("thundering herd")
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: _post(gateway.url, GENERATE, body), range(20)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.content for a in answers}) == 1
        assert sorted(a.headers["x-gemgate-cache"] for a in answers).count("MISS") == 1
        assert _upstream(sim) == 1


def test_hits_are_in_the_ledger_at_no_cost_and_spare_the_budget() -> None:
    with run_simulator() as sim, run_gateway(sim.url, [
            {"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]) as gateway:
        secret, key = gateway.new_key(daily_budget_usd=1)
        body = _body("metered")
        for _ in range(3):
            assert _post(gateway.url, GENERATE, body, secret).status_code == 200
        rows = gateway.ledger("vkey_id = ?", (key["id"],))
        assert [r["cache"] for r in rows] == ["MISS", "HIT", "HIT"]
        miss, *hits = rows
        assert miss["cost_usd"] > 0 and miss["saved_usd"] == 0
        assert all(h["cost_usd"] == 0 and h["saved_usd"] == miss["cost_usd"] for h in hits)
        spent = gateway.admin("GET", f"/admin/vkeys/{key['id']}").json()["spent_usd"]
        assert abs(spent["daily"] - miss["cost_usd"]) < 1e-9  # hits are not charged
        report = gateway.admin("GET", "/admin/usage?by=key&since=1d").json()
        row = next(r for r in report["rows"] if r["key"] == key["id"])
        assert row["cache_hits"] == 2 and abs(row["saved_usd"] - 2 * miss["cost_usd"]) < 1e-9
        assert report["cache_hit_rate"] == round(2 / 3, 4)
        import subprocess
        import sys

        shown = subprocess.run([sys.executable, "-m", "gemgate", "usage", "--db",
                                gateway.db_path, "--by", "key"], capture_output=True,
                               text=True, timeout=30).stdout
        assert "2 of 3 requests answered from the cache (66.7%)" in shown


def test_two_gateways_share_one_redis_cache() -> None:
    with redis_prefix() as prefix, run_simulator() as sim, \
            run_gateway(sim.url, state=redis_state(prefix)) as one, \
            run_gateway(sim.url, state=redis_state(prefix)) as two:
        body = _body("shared between replicas")
        first = _post(one.url, STREAM_SSE, body)
        before = _upstream(sim)
        second = _post(two.url, STREAM_SSE, body)
        assert second.headers["x-gemgate-cache"] == "HIT" and second.content == first.content
        assert _upstream(sim) == before


def test_memory_entries_expire_and_the_least_recent_go_first() -> None:
    class Clock:
        now = 100.0

        def __call__(self) -> float:
            return self.now

    import asyncio

    clock = Clock()
    entry = entry_from("m", b"x" * 1000, [], None, 0.0)
    cache = MemoryCache(max_bytes=3 * entry.size, clock=clock)

    async def run() -> None:
        keys = [CacheKey("tenant:a", "m", str(n)) for n in range(4)]
        for key in keys[:3]:
            await cache.put(key, entry, ttl_s=60)
        assert await cache.get(keys[0]) is not None  # used: now the most recent
        await cache.put(keys[3], entry, ttl_s=60)  # over the bound: the least recent goes
        assert await cache.get(keys[1]) is None
        assert all([await cache.get(k) is not None for k in (keys[0], keys[2], keys[3])])
        clock.now += 61
        assert await cache.get(keys[0]) is None  # expired
        assert await cache.purge(scope="tenant:a") == 2 and cache.bytes == 0

    asyncio.run(run())


SEMANTIC = {"semantic": {"enabled": True, "threshold": 0.85, "dimensions": 256}}
SEMANTIC_TENANTS = [{"name": "team", "token": TOKEN, "semantic_cache": True},
                    {"name": "other", "token": OTHER, "semantic_cache": True}]


def test_a_paraphrase_is_a_semantic_hit_and_an_unrelated_prompt_a_miss() -> None:
    with run_simulator() as sim, run_gateway(sim.url, tenants=SEMANTIC_TENANTS,
                                             cache=SEMANTIC) as gateway:
        first = _post(gateway.url, GENERATE, _body("What is the capital of France?"))
        assert first.headers["x-gemgate-cache"] == "MISS"
        calls = sim.stats()["by_model"]
        paraphrase = _post(gateway.url, GENERATE, _body("What is the capital city of France?"))
        assert paraphrase.headers["x-gemgate-cache"] == "SEMANTIC-HIT"
        assert float(paraphrase.headers["x-gemgate-cache-similarity"]) >= 0.85
        assert paraphrase.content == first.content
        assert sim.stats()["by_model"].get(FLASH) == calls.get(FLASH)  # no generate upstream
        unrelated = _post(gateway.url, GENERATE, _body("How do I bake sourdough bread?"))
        assert unrelated.headers["x-gemgate-cache"] == "MISS"
        # Anything else different is another context: no match, however close the question.
        other_system = {**_body("What is the capital city of France?"),
                        "systemInstruction": {"parts": [{"text": "Answer in French."}]}}
        assert _post(gateway.url, GENERATE, other_system).headers["x-gemgate-cache"] == "MISS"
        # Never across tenants, semantic or exact.
        crossed = _post(gateway.url, GENERATE, _body("What is the capital city of France?"),
                        OTHER)
        assert crossed.headers["x-gemgate-cache"] == "MISS"
        # The embeddings are the gateway's own calls, metered under the internal tenant.
        tenants = gateway.admin("GET", "/admin/usage?by=tenant&since=1d").json()["rows"]
        assert any(r["tenant"] == "gemgate-cache" and r["requests"] >= 4 for r in tenants)
        hit = gateway.ledger("request_id = ?", (paraphrase.headers["x-gemgate-request-id"],))
        assert hit[0]["cache"] == "SEMANTIC-HIT" and hit[0]["cost_usd"] == 0


def test_semantic_matching_is_opt_in_per_tenant_and_skips_tools() -> None:
    with run_simulator() as sim, run_gateway(sim.url, tenants=TENANTS,
                                             cache=SEMANTIC) as gateway:
        _post(gateway.url, GENERATE, _body("What is the capital of France?"))
        near = _post(gateway.url, GENERATE, _body("What is the capital city of France?"))
        assert near.headers["x-gemgate-cache"] == "MISS"  # this tenant did not opt in
    with run_simulator() as sim, run_gateway(sim.url, tenants=SEMANTIC_TENANTS,
                                             cache=SEMANTIC) as gateway:
        tools = [{"functionDeclarations": [{"name": "lookup", "description": "Look up."}]}]
        _post(gateway.url, GENERATE, {**_body("What is the capital of France?"),
                                      "tools": tools})
        near = _post(gateway.url, GENERATE, {**_body("What is the capital city of France?"),
                                             "tools": tools})
        assert near.headers["x-gemgate-cache"] == "MISS"


def test_the_admin_sees_stats_and_purges_by_tenant_and_model(stack: Any) -> None:
    _, gateway = stack
    body = _body("purge me")
    for token in (TOKEN, OTHER):
        _post(gateway.url, GENERATE, body, token)
        assert _post(gateway.url, GENERATE, body, token).headers["x-gemgate-cache"] == "HIT"
    stats = gateway.admin("GET", "/admin/cache").json()
    assert stats["mode"] == "deterministic" and stats["hits"] >= 2
    assert stats["store"]["entries"] >= 2
    assert gateway.admin("DELETE", "/admin/cache?tenant=other").json()["purged"] >= 1
    assert _post(gateway.url, GENERATE, body, OTHER).headers["x-gemgate-cache"] == "MISS"
    assert _post(gateway.url, GENERATE, body).headers["x-gemgate-cache"] == "HIT"
    purged = gateway.admin("DELETE", f"/admin/cache?model={FLASH}").json()["purged"]
    assert purged >= 2
    assert _post(gateway.url, GENERATE, body).headers["x-gemgate-cache"] == "MISS"
    # A client token is not the admin's.
    assert gateway.admin("DELETE", "/admin/cache", token=TOKEN).status_code == 403


def test_both_surfaces_share_entries(stack: Any) -> None:
    _, gateway = stack
    openai = OpenAI(base_url=gateway.url + "/v1", api_key=TOKEN)
    asked = {"model": FLASH, "temperature": 0,
             "messages": [{"role": "user", "content": "one entry, two surfaces"}]}
    made = openai.chat.completions.with_raw_response.create(**asked)  # type: ignore[call-overload]
    assert made.headers["x-gemgate-cache"] == "MISS"
    native = _post(gateway.url, GENERATE, _body("one entry, two surfaces"))
    assert native.headers["x-gemgate-cache"] == "HIT"
    text = native.json()["candidates"][0]["content"]["parts"][-1]["text"]
    assert text == made.parse().choices[0].message.content
    # And the other way: a native entry answers an OpenAI client.
    _post(gateway.url, GENERATE, _body("native first"))
    reused = openai.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
        model=FLASH, temperature=0, messages=[{"role": "user", "content": "native first"}])
    assert reused.headers["x-gemgate-cache"] == "HIT"


def test_ttls_per_request_and_per_tenant() -> None:
    tenants = [{"name": "team", "token": TOKEN, "cache_ttl_s": 1}]
    with run_simulator() as sim, run_gateway(sim.url, tenants=tenants,
                                             cache={"ttl_by_model": {FLASH: 600}}) as gateway:
        _post(gateway.url, GENERATE, _body("short-lived by tenant"))
        assert _post(gateway.url, GENERATE, _body("short-lived by tenant")).headers[
            "x-gemgate-cache"] == "HIT"
        _post(gateway.url, GENERATE, _body("long-lived by request"), **{"x-gemgate-cache":
                                                                          "ttl=600"})
        time.sleep(1.2)
        assert _post(gateway.url, GENERATE, _body("short-lived by tenant")).headers[
            "x-gemgate-cache"] == "MISS"
        assert _post(gateway.url, GENERATE, _body("long-lived by request")).headers[
            "x-gemgate-cache"] == "HIT"


def test_a_global_cache_is_shared_but_never_for_requests_naming_files() -> None:
    import io

    with run_simulator() as sim, run_gateway(sim.url, tenants=TENANTS,
                                             cache={"scope": "global"}) as gateway:
        _post(gateway.url, GENERATE, _body("everyone's question"))
        shared = _post(gateway.url, GENERATE, _body("everyone's question"), OTHER)
        assert shared.headers["x-gemgate-cache"] == "HIT"  # scope: global
        client = sdk(gateway.url, TOKEN)  # kept: a client collected mid-call closes its session
        uploaded = client.files.upload(
            file=io.BytesIO(b"private notes"),
            config=types.UploadFileConfig(mime_type="text/plain"))
        with_file = {"contents": [{"role": "user", "parts": [
            {"fileData": {"fileUri": uploaded.uri, "mimeType": "text/plain"}},
            {"text": "summarise"}]}], "generationConfig": {"temperature": 0}}
        for _ in range(2):
            answer = _post(gateway.url, GENERATE, with_file)
            assert answer.status_code == 200 and answer.headers["x-gemgate-cache"] == "BYPASS"
