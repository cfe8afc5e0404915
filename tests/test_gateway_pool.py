"""The key pool against a simulator that misbehaves: invalid keys, quotas, storms, recovery."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from google.genai import errors, types

from gemgate.google_errors import find_detail, parse_duration
from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import TOKEN, run_gateway, sdk

HELLO = {"contents": [{"parts": [{"text": "hello"}]}]}


def _generate(url: str, **headers: str) -> requests.Response:
    return requests.post(url + "/v1beta/models/gemini-2.5-flash:generateContent", json=HELLO,
                         headers={"x-goog-api-key": TOKEN, **headers}, timeout=30)


def test_invalid_key_and_quota_project_and_healthy_project() -> None:
    config = SimConfig(projects=[
        SimProject(name="limited", keys=["limited-key"],
                   quotas={"*": QuotaLimits(rpm=3)}),
        SimProject(name="healthy", keys=["healthy-key"]),
    ])
    with run_simulator(config) as sim, run_gateway(sim.url, projects=[
        {"name": "broken", "keys": ["not-a-key-at-google"]},
        {"name": "limited", "keys": ["limited-key"]},
        {"name": "healthy", "keys": ["healthy-key"]},
    ]) as gateway:
        statuses = [_generate(gateway.url).status_code for _ in range(40)]
        assert statuses == [200] * 40
        broken = gateway.project_view("broken")["keys"][0]
        assert broken["state"] == "disabled"
        assert broken["problem"] == "API_KEY_INVALID"
        assert "API key not valid" in broken["reason"]
        limited = gateway.project_view("limited")
        assert limited["state"] == "cooling"
        assert limited["keys"][0]["state"] == "active"  # a 429 never disables a key
        assert "RESOURCE_EXHAUSTED" in limited["cooling_reason"]
        received = sim.stats()["by_project"]
        assert received["limited"] == 4  # 3 admitted, 1 refused, then left alone while cooling


def test_a_503_storm_is_ridden_out() -> None:
    # At 50% per attempt, 20 attempts leave one failure in a million per request.
    with run_simulator(seed=11) as sim, run_gateway(sim.url, retry={
            "attempts": 20, "base_delay_s": 0.005, "max_delay_s": 0.05}) as gateway:
        sim.add_fault(kind="503", probability=0.5)
        with ThreadPoolExecutor(8) as workers:
            statuses = list(workers.map(lambda _: _generate(gateway.url).status_code, range(80)))
        assert statuses == [200] * 80
        assert sim.stats()["by_key"]["sim-free:sim-…ey-1"]["statuses"].get("503", 0) > 0
        assert all(p["state"] == "active" for p in gateway.pool_view())  # 5xx disables nothing


def test_all_projects_429_gives_client_429_with_retry_info() -> None:
    config = SimConfig(minute_seconds=30, projects=[
        SimProject(name="a", keys=["a-key"], quotas={"*": QuotaLimits(rpm=1)}),
        SimProject(name="b", keys=["b-key"], quotas={"*": QuotaLimits(rpm=1)}),
    ])
    with run_simulator(config) as sim, run_gateway(
            sim.url, projects=[{"name": "a", "keys": ["a-key"]},
                               {"name": "b", "keys": ["b-key"]}], fallback={}) as gateway:
        # With a 10 s deadline, room 30 s away cannot come in time: refused at once.
        client = sdk(gateway.url, TOKEN, timeout=10_000)
        client.models.generate_content(model="gemini-2.5-flash", contents="1")
        client.models.generate_content(model="gemini-2.5-flash", contents="2")
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="3")
        assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
        error = caught.value.details["error"]
        delay = parse_duration(find_detail(error, "RetryInfo")["retryDelay"])
        assert delay is not None and 25 <= delay <= 30
        assert find_detail(error, "QuotaFailure")["violations"][0]["quotaValue"] == "1"
        assert "quota" in error["hint"].lower()
        assert caught.value.response.headers["retry-after"] == str(int(delay))
        before = sim.stats()["requests"]
        with pytest.raises(errors.ClientError):
            client.models.generate_content(model="gemini-2.5-flash", contents="4")
        assert sim.stats()["requests"] == before  # cooling projects are not hammered


def test_429_without_retry_info_uses_the_default_cooldown() -> None:
    with run_simulator() as sim, run_gateway(sim.url, quota_cooldown_s=7) as gateway:
        sim.add_fault(kind="429", project="sim-free", count=1, retry_after_s=0)
        assert _generate(gateway.url).status_code == 200
        free = gateway.project_view("sim-free")
        assert free["state"] == "cooling" and 0 < free["cooling_for_s"] <= 7


def test_disabled_project_recovers_by_itself() -> None:
    with run_simulator() as sim, run_gateway(sim.url, probe_interval_s=0.2) as gateway:
        sim.set_project_state("sim-paid", "api_disabled")
        sim.set_project_state("sim-free", "suspended")
        answer = _generate(gateway.url, **{"Accept-Language": "zh-CN,zh;q=0.9"})
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["status"] == "UNAVAILABLE" and "密钥" in error["hint"]
        paid = gateway.project_view("sim-paid")
        assert paid["state"] == "disabled" and paid["problem"] == "SERVICE_DISABLED"
        free_keys = gateway.project_view("sim-free")["keys"]
        assert {k["problem"] for k in free_keys} == {"CONSUMER_SUSPENDED"}
        sim.set_project_state("sim-paid", "active")
        sim.set_project_state("sim-free", "active")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                p["state"] != "active" or any(k["state"] != "active" for k in p["keys"])
                for p in gateway.pool_view()):
            time.sleep(0.05)
        assert all(p["state"] == "active" for p in gateway.pool_view())
        assert _generate(gateway.url).status_code == 200


def test_region_refusal_disables_the_project() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        sim.set_project_state("sim-free", "region_blocked")
        assert all(_generate(gateway.url).status_code == 200 for _ in range(5))
        free = gateway.project_view("sim-free")
        assert free["state"] == "disabled" and free["problem"] == "LOCATION_UNSUPPORTED"


def test_load_is_spread_across_keys_and_projects() -> None:
    same_tier = [{"name": "sim-free", "keys": ["sim-free-key-1", "sim-free-key-2"]},
                 {"name": "sim-paid", "keys": ["sim-paid-key-1"]}]
    with run_simulator() as sim, run_gateway(sim.url, projects=same_tier) as gateway:
        for _ in range(30):
            assert _generate(gateway.url).status_code == 200
        by_key = {k: v["requests"] for k, v in sim.stats()["by_key"].items()}
        by_project = sim.stats()["by_project"]
        assert by_project["sim-free"] == 15 and by_project["sim-paid"] == 15
        assert by_key["sim-paid:sim-…ey-1"] == 15
        assert sorted([by_key["sim-free:sim-…ey-1"], by_key["sim-free:sim-…ey-2"]]) == [7, 8]


def test_client_deadline_is_honoured() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        sim.add_fault(kind="latency", delay_ms=3000)
        started = time.monotonic()
        answer = _generate(gateway.url, **{"X-Server-Timeout": "1"})
        assert time.monotonic() - started < 2
        assert answer.status_code == 504
        assert answer.json()["error"]["status"] == "DEADLINE_EXCEEDED"


def test_stream_failure_before_first_byte_is_retried() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        sim.add_fault(kind="midstream", after_chunks=0, count=2)
        sim.add_fault(kind="reset", count=1, stream_only=True)
        client = sdk(gateway.url, TOKEN)
        text = "".join(c.text for c in client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Write 40 words about rain."))
        assert len(text.split()) == 40


def test_stream_failure_after_first_byte_ends_with_an_error_event() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        sim.add_fault(kind="midstream", after_chunks=2)
        client = sdk(gateway.url, TOKEN)
        received = []
        with pytest.raises(errors.ServerError) as caught:
            for chunk in client.models.generate_content_stream(
                    model="gemini-2.5-flash", contents="Write 90 words about fog."):
                received.append(chunk.text)
        assert len(received) == 2 and caught.value.code == 503
        assert sim.stats()["requests"] == 1  # never restarted on another key after bytes went out


def test_stream_cut_by_the_network_ends_with_gemgates_error_event() -> None:
    with run_simulator(chunk_delay_ms=150) as sim, run_gateway(
            sim.url, stream_idle_timeout_s=0.05) as gateway:
        answer = requests.post(
            gateway.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            params={"alt": "sse"}, json={"contents": [{"parts": [{"text": "Write 80 words"}]}]},
            headers={"x-goog-api-key": TOKEN}, timeout=10)
        events = [e for e in answer.content.split(b"\r\n\r\n") if e]
        assert events[0].startswith(b'data: {"candidates"')
        assert events[-1].startswith(b'data: {"error"')
        assert b"STREAM_INTERRUPTED" not in events[-1] and b"hint" in events[-1]


def test_thinking_config_and_tools_reach_upstream_unchanged() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        client = sdk(gateway.url, TOKEN)
        config = types.GenerateContentConfig(
            thinking_config=types.ThinkingConfig(thinking_budget=17))
        reply = client.models.generate_content(model="gemini-2.5-flash", contents="why?",
                                               config=config)
        assert 0 < reply.usage_metadata.thoughts_token_count <= 17


def test_client_leaving_mid_stream_frees_the_key() -> None:
    with run_simulator(chunk_delay_ms=100) as sim, run_gateway(sim.url) as gateway:
        answer = requests.post(
            gateway.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            params={"alt": "sse"}, stream=True, timeout=10, headers={"x-goog-api-key": TOKEN},
            json={"contents": [{"parts": [{"text": "Write 300 words about tides."}]}]})
        first = next(answer.iter_content(chunk_size=None))
        assert first.startswith(b"data: ")
        answer.close()  # the client walks away in the middle of the stream
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                p["in_flight"] for p in gateway.pool_view()):
            time.sleep(0.05)
        assert all(p["in_flight"] == 0 for p in gateway.pool_view())
        assert _generate(gateway.url).status_code == 200


def test_a_hung_key_is_given_up_on_within_the_deadline() -> None:
    with run_simulator() as sim, run_gateway(sim.url, retry={
            "attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.02,
            "attempt_timeout_s": 0.5}) as gateway:
        sim.add_fault(kind="latency", delay_ms=5000, project="sim-free")
        started = time.monotonic()
        statuses = [_generate(gateway.url).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        assert time.monotonic() - started < 3  # not 5 s a request
        assert sim.stats()["by_project"]["sim-paid"] == 3
