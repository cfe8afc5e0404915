"""Quota-aware scheduling against a simulator that enforces real quotas.

The tests that wait for windows to roll run the gateway and the simulator on one event loop with
a virtual clock (tests/virtual_time.py): real 60-second minutes, real HTTP, milliseconds of wall
time. The rest (no waiting) run as every other integration test does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import requests

from gemgate.google_errors import find_detail, parse_duration
from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import TOKEN, run_gateway
from tests.virtual_time import Answer, Stack, in_virtual_time, stack

MINUTE = 60.0  # a real minute: virtual time costs nothing to wait through
# How long a window keeps a request, as the gateway counts it: the minute, its safety margin
# (0.5 s by default) and at most one bucket (a sixtieth of the minute).
WINDOW = MINUTE + 0.5 + MINUTE / 60
FLASH = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"


def _scheduling(**extra: Any) -> dict[str, Any]:
    return {"minute_s": MINUTE, "fallback_after_s": 1.0, **extra}


def _stack(config: SimConfig, projects: list[dict[str, Any]], **fields: Any) -> Any:
    """The virtual-time gateway, with a deadline (10 minutes) that lets a burst wait its turn
    through several real minutes."""
    return stack(config, projects, deadline_s=10 * MINUTE, **fields)


def _body(text: str = "hello") -> dict[str, Any]:
    return {"contents": [{"parts": [{"text": text}]}]}


def _generate(url: str, text: str = "hello", model: str = FLASH,
              **headers: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = requests.post(f"{url}/v1beta/models/{model}:generateContent",
                           json=_body(text),
                           headers={"x-goog-api-key": TOKEN, **headers}, timeout=60)
    return answer, time.monotonic() - started


async def _many(gateway: Stack, count: int, path: str = GENERATE, text: str = "hello",
                **headers: str) -> list[Answer]:
    return list(await asyncio.gather(*(gateway.post(path, _body(text), **headers)
                                       for _ in range(count))))


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
    async def run() -> None:
        async with _stack(_one_project_sim(rpm=4), _solo({"rpm": 4}), fallback={},
                         scheduling=_scheduling()) as gateway:
            answers = await _many(gateway, 12)
            assert [a.status for a in answers] == [200] * 12
            assert max(a.waited for a in answers) >= 2 * MINUTE  # three windows' worth
            assert gateway.upstream_429s() == 0
            # With a deadline too short to wait for room: gemgate's own 429, with a true delay.
            answers = await _many(gateway, 8, **{"X-Server-Timeout": "1"})
            refused = [a for a in answers if a.status == 429]
            assert refused and all(a.status in (200, 429) for a in answers)
            error = refused[0].json()["error"]
            assert error["status"] == "RESOURCE_EXHAUSTED" and error["hint"]
            delay = parse_duration(find_detail(error, "RetryInfo")["retryDelay"])
            assert delay is not None and 1 <= delay <= MINUTE + 1
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_tpm_limits_with_large_prompts() -> None:
    big = "word " * 320  # 1,600 characters: 400 tokens

    async def run() -> None:
        async with _stack(_one_project_sim(tpm=1000), _solo({"tpm": 1000}), fallback={},
                         scheduling=_scheduling()) as gateway:
            answers = await _many(gateway, 6, text=big)
            assert [a.status for a in answers] == [200] * 6
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_a_429_corrects_the_gateways_view_of_a_limit() -> None:
    async def run() -> None:
        async with _stack(_one_project_sim(rpm=3), _solo({"rpm": 100}), fallback={},
                         scheduling=_scheduling()) as gateway:
            # The gateway believes in 100 RPM; the fourth request meets Google's real limit
            # of 3, waits out the cooldown and succeeds.
            for _ in range(4):
                assert (await gateway.post(GENERATE, _body())).status == 200
            assert gateway.upstream_429s() == 1
            # From then on the gateway paces by what Google said: a burst trips nothing more.
            answers = await _many(gateway, 9)
            assert [a.status for a in answers] == [200] * 9
            assert gateway.upstream_429s() == 1

    in_virtual_time(run)


def test_high_priority_waits_a_fraction_of_low() -> None:
    async def run() -> None:
        async with _stack(_one_project_sim(rpm=2), _solo({"rpm": 2}), fallback={},
                         scheduling=_scheduling()) as gateway:
            low = asyncio.gather(*(gateway.post(GENERATE, _body("low"), **{
                "x-gemgate-priority": "low"}) for _ in range(6)))
            await asyncio.sleep(0.2)
            high = await asyncio.gather(*(gateway.post(GENERATE, _body("high"), **{
                "x-gemgate-priority": "high"}) for _ in range(2)))
            lows = await low
            assert [a.status for a in lows] == [200] * 6
            assert [a.status for a in high] == [200] * 2
            assert max(a.waited for a in high) < 0.5 * max(a.waited for a in lows)
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_one_tenants_flood_does_not_starve_another() -> None:
    tenants = [{"name": "flood", "token": "gg-flood-token-01"},
               {"name": "quiet", "token": TOKEN}]

    async def run() -> None:
        async with _stack(_one_project_sim(rpm=3), _solo({"rpm": 3}), fallback={},
                         tenants=tenants, scheduling=_scheduling()) as gateway:
            flood = asyncio.gather(*(gateway.post(
                GENERATE, _body("batch job"), "gg-flood-token-01",
                **{"x-gemgate-priority": "normal"}) for _ in range(15)))
            await asyncio.sleep(0.2)
            quiet = await _many(gateway, 2, text="my question")
            floods = await flood
            assert all(a.status == 200 for a in quiet)
            # The flood needs five windows; the quiet tenant is served within the next two.
            assert max(a.waited for a in quiet) <= 2 * WINDOW
            assert max(a.waited for a in floods) >= 4 * MINUTE
            assert max(a.waited for a in floods) > max(a.waited for a in quiet)
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_free_first_and_only_allowed_classes_spill_into_paid() -> None:
    config, projects = _free_and_paid()

    async def run() -> None:
        async with _stack(config, projects, fallback={},
                         scheduling=_scheduling()) as gateway:
            first = await gateway.post(GENERATE, _body(), **{"x-gemgate-priority": "batch"})
            assert first.status == 200
            assert gateway.sim.stats()["by_project"] == {"free": 1}  # free first, even batch
            urgent = await gateway.post(GENERATE, _body(), **{"x-gemgate-priority": "high"})
            assert urgent.status == 200 and urgent.waited < 0.5
            assert gateway.sim.stats()["by_project"].get("paid") == 1  # free full: spilled
            batch = await gateway.post(GENERATE, _body(), **{"x-gemgate-priority": "batch",
                                                             "X-Server-Timeout": "1"})
            assert batch.status == 429  # batch waits for free quota instead of paying
            assert gateway.sim.stats()["by_project"].get("paid") == 1
            later = await gateway.post(GENERATE, _body(), **{"x-gemgate-priority": "batch"})
            assert later.status == 200  # and gets it when the free window opens
            assert later.waited > 1
            assert gateway.sim.stats()["by_project"] == {"free": 2, "paid": 1}

    in_virtual_time(run)


def test_fallback_when_a_models_quota_is_gone_everywhere() -> None:
    config = SimConfig(minute_seconds=MINUTE, projects=[SimProject(
        name="solo", keys=["solo-key"], quotas={"gemini-2.5-pro": QuotaLimits(rpm=1)})])
    pro = "/v1beta/models/gemini-2.5-pro:generateContent"

    async def run() -> None:
        async with _stack(config, [{"name": "solo", "keys": ["solo-key"],
                                   "limits": {"gemini-2.5-pro": {"rpm": 1}}}],
                         scheduling=_scheduling()) as gateway:
            first = await gateway.post(pro, _body())
            assert first.headers["x-gemgate-model"] == "gemini-2.5-pro"
            second = await gateway.post(pro, _body())
            assert second.status == 200 and second.waited < 3
            assert second.headers["x-gemgate-model"] == "gemini-2.5-flash"
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_waits_are_bounded_by_the_deadline() -> None:
    async def run() -> None:
        async with _stack(_one_project_sim(rpm=1), _solo({"rpm": 1}), fallback={},
                         scheduling=_scheduling()) as gateway:
            assert (await gateway.post(GENERATE, _body())).status == 200
            answer = await gateway.post(GENERATE, _body(), **{"X-Server-Timeout": "1"})
            assert answer.status == 429 and answer.waited < 1.5

    in_virtual_time(run)


def test_embedding_tpm_is_respected() -> None:
    model = "text-embedding-004"
    config = SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="solo", keys=["solo-key"], quotas={model: QuotaLimits(tpm=600)})])
    texts = ["vector " * 60] * 2  # about 210 tokens a call
    body = {"requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}}
                         for t in texts]}

    async def run() -> None:
        async with _stack(config, [{"name": "solo", "keys": ["solo-key"],
                                   "limits": {model: {"tpm": 600}}}],
                         scheduling=_scheduling()) as gateway:
            answers = await asyncio.gather(*(gateway.post(
                f"/v1beta/models/{model}:batchEmbedContents", body) for _ in range(6)))
            assert [a.status for a in answers] == [200] * 6
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


def test_tenant_defaults_for_priority_and_fallback() -> None:
    config, projects = _free_and_paid()
    tenants = [{"name": "nightly", "token": "gg-nightly-token", "priority": "batch"},
               {"name": "strict", "token": TOKEN, "fallback": False}]

    async def run() -> None:
        async with _stack(config, projects, tenants=tenants, scheduling=_scheduling(),
                         fallback={"gemini-2.5-pro": [FLASH]}) as gateway:
            nightly = {"X-Server-Timeout": "1"}
            first = await gateway.post(GENERATE, _body(), "gg-nightly-token", **nightly)
            assert first.status == 200  # free quota
            second = await gateway.post(GENERATE, _body(), "gg-nightly-token", **nightly)
            assert second.status == 429  # batch: no spill
            assert gateway.sim.stats()["by_project"] == {"free": 1}
            gateway.sim.add_fault(kind="503", model="gemini-2.5-pro")
            strict = await gateway.post("/v1beta/models/gemini-2.5-pro:generateContent",
                                        _body())
            assert strict.status == 503  # this tenant never gets another model's answer
            assert strict.headers["x-gemgate-model"] == "gemini-2.5-pro"

    in_virtual_time(run)


def test_streams_are_paced_and_settled_too() -> None:
    big = "word " * 320  # 400 tokens a request against a TPM of 1,000

    async def run() -> None:
        async with _stack(_one_project_sim(tpm=1000), _solo({"tpm": 1000}), fallback={},
                         scheduling=_scheduling()) as gateway:
            answers = await asyncio.gather(*(gateway.post(
                f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", _body(big))
                for _ in range(5)))
            assert [a.status for a in answers] == [200] * 5
            assert all(b'"finishReason"' in a.body for a in answers)
            assert gateway.upstream_429s() == 0

    in_virtual_time(run)


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
