"""Honest health: keys that keep failing with 5xx are set aside (and tried again, carefully),
keys taken out of use are logged, and readiness says when nothing can serve — and why."""

from __future__ import annotations

import io
import time
from typing import Any

import requests

from gemgate.config import OutlierConfig, ProjectConfig
from gemgate.core.classify import OK, Verdict
from gemgate.logs import setup_logging
from gemgate.simulator import RunningSimulator
from gemgate.upstream.pool import KeyPool, Lease
from tests.conftest import TOKEN, eventually, run_gateway

OVERLOADED = Verdict("MODEL_OVERLOADED", retry=True)
BAD_REQUEST = Verdict("INVALID_REQUEST")
HI = {"contents": [{"parts": [{"text": "hi"}]}]}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pool(clock: FakeClock) -> KeyPool:
    projects = [ProjectConfig(name="a", keys=["key-a-000001", "key-a-000002"]),
                ProjectConfig(name="b", keys=["key-b-000001"])]
    return KeyPool(projects, outliers=OutlierConfig(consecutive_failures=3, base_ejection_s=10,
                                                    max_ejection_s=35), clock=clock)


def _fail(pool: KeyPool, secret: str, verdict: Verdict = OVERLOADED) -> None:
    key = next(k for p in pool.projects for k in p.keys if k.secret == secret)
    key.in_flight += 1
    key.project.in_flight += 1
    pool.release(Lease(key), verdict)


def _outlier(pool: KeyPool, secret: str) -> dict[str, object]:
    key = next(k for p in pool.projects for k in p.keys if k.secret == secret)
    return key.outlier.view(pool.clock())


def _picks(pool: KeyPool, n: int = 30) -> list[str]:
    picked = []
    for _ in range(n):
        lease = pool.acquire()
        assert lease is not None
        picked.append(lease.key.secret)
        pool.release(lease, OK)
    return picked


def test_a_key_failing_in_a_row_is_ejected_then_probed_with_a_growing_back_off() -> None:
    clock = FakeClock()
    pool = _pool(clock)
    bad = "key-a-000002"
    for _ in range(2):
        _fail(pool, bad)
    _fail(pool, bad, BAD_REQUEST)  # a client's 400 breaks the run: not the key's fault
    _fail(pool, bad)
    _fail(pool, bad)
    assert _outlier(pool, bad)["state"] == "healthy"  # two in a row: still in use
    _fail(pool, bad)  # three in a row: ejected for 10 s
    assert _outlier(pool, bad)["state"] == "ejected"
    assert bad not in _picks(pool)
    clock.now += 10.5
    first, second = pool.acquire(only="a"), pool.acquire(only="a")
    assert first is not None and second is not None
    # On trial: it takes one request at a time, never two at once.
    assert [first.key.secret, second.key.secret].count(bad) == 1
    for lease in (first, second):
        if lease.key.secret != bad:
            pool.release(lease, OK)
        else:
            lease.key.in_flight -= 1
            lease.project.in_flight -= 1
    _fail(pool, bad)  # a failure on trial: straight back, for twice as long
    view = next(k for k in pool.view()[0]["keys"] if k["key"].endswith("0002"))
    assert view["outlier"]["state"] == "ejected" and view["outlier"]["ejections"] == 2
    assert 19 < view["outlier"]["ejected_for_s"] <= 20
    clock.now += 20.5
    lease = pool.acquire(only="a", avoid=None)
    assert lease is not None
    pool.release(lease, OK)
    for _ in range(3):
        _fail(pool, bad)
    view = next(k for k in pool.view()[0]["keys"] if k["key"].endswith("0002"))
    assert view["outlier"]["ejected_for_s"] <= 35  # capped at max_ejection_s


def test_the_back_off_decays_while_the_key_stays_healthy() -> None:
    clock = FakeClock()
    pool = _pool(clock)
    bad = "key-b-000001"
    for _ in range(3):
        _fail(pool, bad)
    clock.now += 10.5
    lease = pool.acquire(only="b")
    assert lease is not None
    pool.release(lease, OK)  # the trial succeeds: healthy again
    clock.now += 100  # healthy for ten base periods: the multiplier is forgotten
    for _ in range(3):
        _fail(pool, bad)
    view = pool.view()[1]
    assert view["keys"][0]["outlier"]["ejections"] == 1
    assert view["outlier"]["state"] == "ejected"  # the project's own run ejected it too


def test_ejected_keys_still_serve_when_nothing_else_is_left() -> None:
    clock = FakeClock()
    pool = KeyPool([ProjectConfig(name="only", keys=["single-key-0001"])],
                   outliers=OutlierConfig(consecutive_failures=1), clock=clock)
    _fail(pool, "single-key-0001")
    assert pool.acquire() is not None


def test_an_always_503_key_among_good_ones_stops_taking_traffic(sim: RunningSimulator) -> None:
    sim.add_fault(kind="503", key="sim-free-key-2")
    try:
        with run_gateway(sim.url) as gateway:
            for _ in range(60):
                answer = requests.post(
                    gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                    json=HI, headers={"x-goog-api-key": TOKEN}, timeout=10)
                assert answer.status_code == 200
            view = gateway.project_view("sim-free")
            bad = next(k for k in view["keys"] if k["key"].endswith("ey-2"))
            assert bad["outlier"]["state"] == "ejected"
            assert bad["failures"] <= 6, bad  # five to eject it, none after (no wait here)
    finally:
        sim.clear_faults()


def test_with_every_key_invalid_readiness_fails_and_says_why(sim: RunningSimulator) -> None:
    stream = io.StringIO()
    setup_logging("INFO", [], stream=stream)
    try:
        projects = [{"name": "dead-1", "keys": ["not-a-real-key-1"]},
                    {"name": "dead-2", "keys": ["not-a-real-key-2", "not-a-real-key-3"]}]
        with run_gateway(sim.url, projects) as gateway:
            assert requests.get(gateway.url + "/readyz", timeout=5).status_code == 200
            for _ in range(3):
                answer = requests.post(
                    gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                    json=HI, headers={"x-goog-api-key": TOKEN}, timeout=10)
            assert answer.status_code == 503
            error = answer.json()["error"]
            assert "every upstream key is invalid" in error["message"]
            assert "API_KEY_INVALID" in error["message"]
            assert "aistudio.google.com" in error["hint"] or "Replace" in error["hint"]
            assert requests.get(gateway.url + "/healthz", timeout=5).status_code == 200
            ready = requests.get(gateway.url + "/readyz", timeout=5)
            assert ready.status_code == 503
            assert ready.json()["problem"] == "API_KEY_INVALID"
            assert "invalid" in ready.json()["reason"]
            zh = requests.get(gateway.url + "/readyz", headers={"Accept-Language": "zh-CN"},
                              timeout=5)
            assert "密钥" in zh.json()["hint"]
            for project in gateway.pool_view():
                assert project["state"] == "disabled"
                assert project["reason"].startswith("every key is disabled")
                assert project["problem"] == "API_KEY_INVALID"
            time.sleep(0.1)
    finally:
        setup_logging("INFO", [])
    lines = [line for line in stream.getvalue().splitlines() if "taken out of use" in line]
    assert len(lines) == 3  # one per key, masked
    assert all("not-a-real-key" not in line for line in lines)
    assert any("dead-2" in line and "API_KEY_INVALID" in line for line in lines)
    assert "has no usable key left" in stream.getvalue()


def test_a_key_one_replica_finds_invalid_is_out_of_use_on_the_other(
        sim: RunningSimulator) -> None:
    from gemgate.state.health import MemoryHub

    hub = MemoryHub()
    projects = [{"name": "mixed", "keys": ["not-a-real-key-9", "sim-free-key-1"]}]
    with run_gateway(sim.url, projects, health=hub.member()) as one, \
            run_gateway(sim.url, projects, health=hub.member()) as two:
        for _ in range(3):  # the pool spreads over both keys: the bad one is met at once
            requests.post(one.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          json=HI, headers={"x-goog-api-key": TOKEN}, timeout=10)
        assert _key_state(one, "ey-9") == "disabled"
        eventually(lambda: _key_state(two, "ey-9") == "disabled", 1.0,
                   "the other replica never heard")
        assert _key_state(two, "ey-1") == "active"
        # Quota cooling is shared too: a 429 on one cools the project on the other.
        sim.add_fault(kind="429", count=1, retry_after_s=30)
        try:
            requests.post(one.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          json=HI, headers={"x-goog-api-key": TOKEN}, timeout=10)
        finally:
            sim.clear_faults()
        eventually(lambda: bool(two.project_view("mixed")["cooling"]), 1.0,
                   "the other replica never cooled")


def _key_state(gateway: Any, suffix: str) -> str:
    view = gateway.project_view("mixed")
    return str(next(k for k in view["keys"] if k["key"].endswith(suffix))["state"])
