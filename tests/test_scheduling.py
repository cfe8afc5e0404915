"""Quota-aware scheduling against a simulator that enforces real quotas (a shortened minute)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from gemgate.google_errors import find_detail, parse_duration
from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import TOKEN, run_gateway

MINUTE = 2.0
FLASH = "gemini-2.5-flash"


def _scheduling(**extra: Any) -> dict[str, Any]:
    # The default margin (0.5 s): with a 2-second minute, a loaded CI machine can delay a
    # request between admission and its arrival upstream by more than 0.25 s, and the
    # simulator's window then still counts what the gateway's has let go (a flaky 429).
    return {"minute_s": MINUTE, "margin_s": 0.5, "fallback_after_s": 1.0, **extra}


def _generate(url: str, text: str = "hello", model: str = FLASH,
              **headers: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = requests.post(f"{url}/v1beta/models/{model}:generateContent",
                           json={"contents": [{"parts": [{"text": text}]}]},
                           headers={"x-goog-api-key": TOKEN, **headers}, timeout=60)
    return answer, time.monotonic() - started


def _upstream_429s(sim: Any) -> int:
    return sum(int(row["statuses"].get("429", 0)) for row in sim.stats()["by_key"].values())


def _one_project_sim(**limits: int) -> SimConfig:
    return SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="solo", keys=["solo-key"], quotas={FLASH: QuotaLimits(**limits)})])


def _free_and_paid() -> tuple[SimConfig, list[dict[str, Any]]]:
    """A free project with room for one flash request a minute, and a roomy paid one."""
    config = SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="free", keys=["free-key"], quotas={FLASH: QuotaLimits(rpm=1)}),
        SimProject(name="paid", keys=["paid-key"], tier="tier1")])
    projects = [{"name": "free", "keys": ["free-key"], "limits": {FLASH: {"rpm": 1}}},
                {"name": "paid", "tier": "tier1", "keys": ["paid-key"]}]
    return config, projects


def _solo(limits: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": "solo", "keys": ["solo-key"], "limits": {FLASH: limits}}]


def test_a_burst_of_three_times_rpm_trips_no_upstream_limit() -> None:
    with run_simulator(_one_project_sim(rpm=4)) as sim, run_gateway(
            sim.url, projects=_solo({"rpm": 4}), fallback={},
            scheduling=_scheduling()) as gateway:
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda _: _generate(gateway.url)[0].status_code,
                                    range(12)))
        assert results == [200] * 12
        assert _upstream_429s(sim) == 0
        # With a deadline too short to wait for room: gemgate's own 429, with a true delay.
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _generate(
                gateway.url, **{"X-Server-Timeout": "1"})[0], range(8)))
        refused = [a for a in answers if a.status_code == 429]
        assert refused and all(a.status_code in (200, 429) for a in answers)
        error = refused[0].json()["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED" and error["hint"]
        delay = parse_duration(find_detail(error, "RetryInfo")["retryDelay"])
        assert delay is not None and 1 <= delay <= MINUTE + 1
        assert _upstream_429s(sim) == 0


def test_tpm_limits_with_large_prompts() -> None:
    big = "word " * 320  # 1,600 characters: 400 tokens
    with run_simulator(_one_project_sim(tpm=1000)) as sim, run_gateway(
            sim.url, projects=_solo({"tpm": 1000}), fallback={},
            scheduling=_scheduling()) as gateway:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: _generate(gateway.url, big)[0].status_code,
                                    range(6)))
        assert results == [200] * 6
        assert _upstream_429s(sim) == 0


def test_a_429_corrects_the_gateways_view_of_a_limit() -> None:
    with run_simulator(_one_project_sim(rpm=3)) as sim, run_gateway(
            sim.url, projects=_solo({"rpm": 100}), fallback={},
            scheduling=_scheduling()) as gateway:
        # The gateway believes in 100 RPM; the fourth request meets Google's real limit of 3,
        # waits out the cooldown and succeeds.
        assert [_generate(gateway.url)[0].status_code for _ in range(4)] == [200] * 4
        assert _upstream_429s(sim) == 1
        # From then on the gateway paces by what Google said: a burst trips nothing more.
        with ThreadPoolExecutor(9) as pool:
            results = list(pool.map(lambda _: _generate(gateway.url)[0].status_code, range(9)))
        assert results == [200] * 9
        assert _upstream_429s(sim) == 1


def test_high_priority_waits_a_fraction_of_low() -> None:
    with run_simulator(_one_project_sim(rpm=2)) as sim, run_gateway(
            sim.url, projects=_solo({"rpm": 2}), fallback={},
            scheduling=_scheduling()) as gateway, ThreadPoolExecutor(10) as pool:
        low = [pool.submit(_generate, gateway.url, "low", **{"x-gemgate-priority": "low"})
               for _ in range(6)]
        time.sleep(0.2)
        high = [pool.submit(_generate, gateway.url, "high", **{"x-gemgate-priority": "high"})
                for _ in range(2)]
        low_waits = [f.result()[1] for f in low if f.result()[0].status_code == 200]
        high_waits = [f.result()[1] for f in high if f.result()[0].status_code == 200]
        assert len(low_waits) == 6 and len(high_waits) == 2
        assert max(high_waits) < 0.5 * max(low_waits)
        assert _upstream_429s(sim) == 0


def test_one_tenants_flood_does_not_starve_another() -> None:
    tenants = [{"name": "flood", "token": "gg-flood-token-01"},
               {"name": "quiet", "token": TOKEN}]
    with run_simulator(_one_project_sim(rpm=3)) as sim, run_gateway(
            sim.url, projects=_solo({"rpm": 3}), fallback={}, tenants=tenants,
            scheduling=_scheduling()) as gateway, ThreadPoolExecutor(20) as pool:
        flood = [pool.submit(_generate, gateway.url, "batch job", **{
            "x-goog-api-key": "gg-flood-token-01", "x-gemgate-priority": "normal"})
            for _ in range(15)]
        time.sleep(0.2)
        quiet = [pool.submit(_generate, gateway.url, "my question") for _ in range(2)]
        quiet_waits = [f.result()[1] for f in quiet]
        flood_waits = [f.result()[1] for f in flood]
        assert all(f.result()[0].status_code == 200 for f in quiet)
        # The flood needs five windows; the quiet tenant is served within the next two.
        assert max(quiet_waits) <= 2 * MINUTE + 1.0
        assert max(flood_waits) > max(quiet_waits)
        assert _upstream_429s(sim) == 0


def test_free_first_and_only_allowed_classes_spill_into_paid() -> None:
    config, projects = _free_and_paid()
    with run_simulator(config) as sim, run_gateway(sim.url, projects=projects, fallback={},
                                                   scheduling=_scheduling()) as gateway:
        first, _ = _generate(gateway.url, **{"x-gemgate-priority": "batch"})
        assert first.status_code == 200
        assert sim.stats()["by_project"] == {"free": 1}  # free quota first, even for batch
        urgent, waited = _generate(gateway.url, **{"x-gemgate-priority": "high"})
        assert urgent.status_code == 200 and waited < 0.5
        assert sim.stats()["by_project"].get("paid") == 1  # free was full: high spilled
        batch, _ = _generate(gateway.url, **{"x-gemgate-priority": "batch",
                                             "X-Server-Timeout": "1"})
        assert batch.status_code == 429  # batch waits for free quota instead of paying
        assert sim.stats()["by_project"].get("paid") == 1
        later, _ = _generate(gateway.url, **{"x-gemgate-priority": "batch"})
        assert later.status_code == 200  # and gets it when the free window opens
        assert sim.stats()["by_project"] == {"free": 2, "paid": 1}


def test_fallback_when_a_model_is_overloaded() -> None:
    with run_simulator() as sim, run_gateway(sim.url, retry={
            "attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02}) as gateway:
        sim.add_fault(kind="503", model="gemini-2.5-pro")
        answer, _ = _generate(gateway.url, model="gemini-2.5-pro")
        assert answer.status_code == 200
        assert answer.headers["x-gemgate-model"] == "gemini-2.5-flash"
        assert answer.json()["modelVersion"] == "gemini-2.5-flash"
        forbidden, _ = _generate(gateway.url, model="gemini-2.5-pro",
                                 **{"x-gemgate-fallback": "off"})
        assert forbidden.status_code == 503
        error = forbidden.json()["error"]
        assert error["status"] == "UNAVAILABLE" and "overloaded" in error["hint"]


def test_fallback_when_a_models_quota_is_gone_everywhere() -> None:
    config = SimConfig(minute_seconds=30, projects=[SimProject(
        name="solo", keys=["solo-key"], quotas={"gemini-2.5-pro": QuotaLimits(rpm=1)})])
    with run_simulator(config) as sim, run_gateway(
            sim.url, projects=[{"name": "solo", "keys": ["solo-key"],
                                "limits": {"gemini-2.5-pro": {"rpm": 1}}}],
            scheduling=_scheduling(minute_s=30)) as gateway:
        assert _generate(gateway.url, model="gemini-2.5-pro")[0].headers[
            "x-gemgate-model"] == "gemini-2.5-pro"
        second, waited = _generate(gateway.url, model="gemini-2.5-pro")
        assert second.status_code == 200 and waited < 3
        assert second.headers["x-gemgate-model"] == "gemini-2.5-flash"
        assert _upstream_429s(sim) == 0


def test_a_429_cools_only_that_model() -> None:
    with run_simulator() as sim, run_gateway(sim.url, fallback={}) as gateway:
        sim.add_fault(kind="429", model=FLASH, retry_after_s=20)
        # A 20 s cooldown cannot end within a 3 s deadline: refused without waiting.
        refused, waited = _generate(gateway.url, model=FLASH, **{"X-Server-Timeout": "3"})
        assert refused.status_code == 429 and waited < 2
        assert _generate(gateway.url, model="gemini-2.5-pro")[0].status_code == 200
        cooling = gateway.project_view("sim-free")["cooling"]
        assert set(cooling) == {FLASH}


def test_model_auto_routes_by_the_request_and_says_why() -> None:
    review = ("Please review this code and explain why it is slow, and design a better "
              "architecture:\n```python\n" + "def handler(items):\n    for i in items:\n"
              "        total = sum(x for x in items)\n    return total\n" * 60 + "```")
    with run_simulator() as sim, run_gateway(sim.url, aliases={"fast": "gemini-2.0-flash"}
                                             ) as gateway:
        greeting, _ = _generate(gateway.url, "Hi there!", model="auto")
        assert greeting.status_code == 200
        assert greeting.headers["x-gemgate-model"] == "gemini-2.5-flash-lite"
        assert "auto: score 0" in greeting.headers["x-gemgate-route"]
        heavy, _ = _generate(gateway.url, review, model="auto")
        assert heavy.headers["x-gemgate-model"] == "gemini-2.5-pro"
        route = heavy.headers["x-gemgate-route"]
        assert "code +2" in route and "reasoning cues" in route and "long prompt" in route
        alias, _ = _generate(gateway.url, "hi", model="fast")
        assert alias.headers["x-gemgate-model"] == "gemini-2.0-flash"
        assert alias.headers["x-gemgate-route"] == "alias: fast -> gemini-2.0-flash"


def test_unknown_priority_is_a_clear_400() -> None:
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        answer, _ = _generate(gateway.url, **{"x-gemgate-priority": "urgent"})
        assert answer.status_code == 400
        assert "high, normal, low, batch" in answer.json()["error"]["hint"]


def test_waits_are_bounded_by_the_deadline() -> None:
    with run_simulator(_one_project_sim(rpm=1)) as sim, run_gateway(
            sim.url, projects=_solo({"rpm": 1}), fallback={},
            scheduling=_scheduling()) as gateway:
        assert _generate(gateway.url)[0].status_code == 200
        answer, waited = _generate(gateway.url, **{"X-Server-Timeout": "1"})
        assert answer.status_code == 429 and waited < 1.5


def test_embedding_tpm_is_respected() -> None:
    model = "text-embedding-004"
    config = SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="solo", keys=["solo-key"], quotas={model: QuotaLimits(tpm=600)})])
    texts = ["vector " * 60] * 2  # about 210 tokens a call
    with run_simulator(config) as sim, run_gateway(
            sim.url, projects=[{"name": "solo", "keys": ["solo-key"],
                                "limits": {model: {"tpm": 600}}}],
            scheduling=_scheduling()) as gateway:

        def embed(_: int) -> int:
            body = {"requests": [{"model": f"models/{model}", "content": {"parts": [
                {"text": t}]}} for t in texts]}
            return requests.post(f"{gateway.url}/v1beta/models/{model}:batchEmbedContents",
                                 json=body, headers={"x-goog-api-key": TOKEN},
                                 timeout=60).status_code

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(embed, range(6))) == [200] * 6
        assert _upstream_429s(sim) == 0


def test_tenant_defaults_for_priority_and_fallback() -> None:
    config, projects = _free_and_paid()
    tenants = [{"name": "nightly", "token": "gg-nightly-token", "priority": "batch"},
               {"name": "strict", "token": TOKEN, "fallback": False}]
    with run_simulator(config) as sim, run_gateway(
            sim.url, projects=projects, tenants=tenants, scheduling=_scheduling(),
            fallback={"gemini-2.5-pro": [FLASH]}) as gateway:
        nightly = {"x-goog-api-key": "gg-nightly-token", "X-Server-Timeout": "1"}
        assert _generate(gateway.url, **nightly)[0].status_code == 200  # free quota
        assert _generate(gateway.url, **nightly)[0].status_code == 429  # batch: no spill
        assert sim.stats()["by_project"] == {"free": 1}
        sim.add_fault(kind="503", model="gemini-2.5-pro")
        strict, _ = _generate(gateway.url, model="gemini-2.5-pro")
        assert strict.status_code == 503  # this tenant never gets another model's answer
        assert strict.headers["x-gemgate-model"] == "gemini-2.5-pro"


def test_streams_are_paced_and_settled_too() -> None:
    big = "word " * 320  # 400 tokens a request against a TPM of 1,000
    with run_simulator(_one_project_sim(tpm=1000)) as sim, run_gateway(
            sim.url, projects=_solo({"tpm": 1000}), fallback={},
            scheduling=_scheduling()) as gateway:

        def stream(_: int) -> bytes:
            answer = requests.post(
                f"{gateway.url}/v1beta/models/{FLASH}:streamGenerateContent",
                params={"alt": "sse"}, json={"contents": [{"parts": [{"text": big}]}]},
                headers={"x-goog-api-key": TOKEN}, timeout=60)
            assert answer.status_code == 200
            return answer.content

        with ThreadPoolExecutor(5) as pool:
            bodies = list(pool.map(stream, range(5)))
        assert all(b'"finishReason"' in body for body in bodies)
        assert _upstream_429s(sim) == 0
