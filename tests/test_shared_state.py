"""Replicas sharing Redis: two gateways (each its own event loop, pool and scheduler — nothing
shared but Redis) in front of a simulator that enforces a project's real limits."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import requests

from gemgate.google_errors import find_detail
from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import TOKEN, eventually, run_gateway
from tests.shared_backends import pg_schema, pg_store, redis_prefix, redis_state

FLASH = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"
HI = {"contents": [{"parts": [{"text": "hi"}]}]}
OTHER = "gg-other-tenant-01"
MINUTE = 2.0  # real time here: two processes' worth of clocks, and Redis's


def _post(url: str, path: str = GENERATE, body: Any = HI, token: str = TOKEN,
          **headers: str) -> requests.Response:
    return requests.post(url + path, json=body, timeout=60,
                         headers={"x-goog-api-key": token, **headers})


def _upstream_429s(sim: Any) -> int:
    return sum(int(row["statuses"].get("429", 0)) for row in sim.stats()["by_key"].values())


def _solo(rpm: int) -> tuple[SimConfig, list[dict[str, Any]]]:
    config = SimConfig(minute_seconds=MINUTE, projects=[
        SimProject(name="solo", keys=["solo-key"], quotas={FLASH: QuotaLimits(rpm=rpm)})])
    return config, [{"name": "solo", "keys": ["solo-key"], "limits": {FLASH: {"rpm": rpm}}}]


@contextmanager
def _replicas(upstream: str, projects: list[dict[str, Any]] | None,
              state: dict[str, Any] | None, schema: str | None = None,
              **fields: Any) -> Iterator[tuple[Any, Any]]:
    """Two gateways; with `schema`, sharing a PostgreSQL store (each its own spool)."""
    scheduling = {"minute_s": MINUTE, "margin_s": 0.5, "fallback_after_s": 1.0}
    extra: dict[str, Any] = {"fallback": {}, "scheduling": scheduling, **fields}
    if state is not None:
        extra["state"] = state
    spools = tempfile.mkdtemp(prefix="gemgate-spool-")

    def store(n: int) -> dict[str, Any]:
        return {"store": pg_store(schema, f"{spools}/{n}.db")} if schema else {}

    with run_gateway(upstream, projects, **extra, **store(1)) as one, \
            run_gateway(upstream, projects, **extra, **store(2)) as two:
        yield one, two


def _burst(one: Any, two: Any, count: int, **headers: str) -> list[requests.Response]:
    urls = [one.url if n % 2 else two.url for n in range(count)]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda url: _post(url, **headers), urls))


def test_two_replicas_keep_a_projects_rpm_together() -> None:
    config, projects = _solo(rpm=4)
    with redis_prefix() as prefix, run_simulator(config) as sim, \
            _replicas(sim.url, projects, redis_state(prefix)) as (one, two):
        answers = _burst(one, two, 12)  # three times the RPM, split over both
        assert [a.status_code for a in answers] == [200] * 12
        assert _upstream_429s(sim) == 0
        # Too short a deadline to wait for room: gemgate's own 429 with a true RetryInfo.
        answers = _burst(one, two, 8, **{"X-Server-Timeout": "1"})
        refused = [a for a in answers if a.status_code == 429]
        assert refused and all(a.status_code in (200, 429) for a in answers)
        assert find_detail(refused[0].json()["error"], "RetryInfo")["retryDelay"]
        assert _upstream_429s(sim) == 0
        # Either replica's metrics show the shared window against its limit.
        scraped = requests.get(two.url + "/metrics", timeout=5).text
        used = re.search(r'gemgate_quota_used\{model="gemini-2.5-flash",project="solo",'
                         r'window="rpm"\} (\S+)', scraped)
        assert used is not None and 1 <= float(used.group(1)) <= 4, scraped[-2000:]
        assert 'gemgate_quota_limit{model="gemini-2.5-flash",project="solo",window="rpm"} 4.0' \
            in scraped


def test_without_shared_state_two_replicas_trip_googles_limit() -> None:
    """The control: the same burst, each replica on its own memory, meets Google's 429s."""
    config, projects = _solo(rpm=4)
    with run_simulator(config) as sim, _replicas(sim.url, projects, None) as (one, two):
        _burst(one, two, 12, **{"X-Server-Timeout": "1"})
        assert _upstream_429s(sim) > 0


def test_a_key_disabled_on_one_replica_is_out_of_use_on_the_other_within_a_second() -> None:
    projects = [{"name": "mixed", "keys": ["not-a-real-key-9", "sim-free-key-1"]}]
    with redis_prefix() as prefix, run_simulator() as sim, \
            _replicas(sim.url, projects, redis_state(prefix)) as (one, two):
        for _ in range(3):  # the pool spreads over both keys: the bad one is met at once
            _post(one.url)
        assert _key_state(one, "ey-9") == "disabled"
        eventually(lambda: _key_state(two, "ey-9") == "disabled", 1.0,
                   "the other replica never heard")
        assert _key_state(two, "ey-1") == "active"
        # A replica that starts later catches up on what it missed.
        with run_gateway(sim.url, projects, state=redis_state(prefix)) as late:
            eventually(lambda: _key_state(late, "ey-9") == "disabled", 1.0,
                       "a late replica never caught up")


def _key_state(gateway: Any, suffix: str) -> str:
    view = gateway.project_view("mixed")
    return str(next(k for k in view["keys"] if k["key"].endswith(suffix))["state"])


def test_a_resumable_upload_started_on_one_replica_finishes_on_the_other() -> None:
    data = b"0123456789" * 1000
    tenants = [{"name": "team", "token": TOKEN}, {"name": "other", "token": OTHER}]
    with redis_prefix() as prefix, pg_schema() as schema, run_simulator() as sim, \
            _replicas(sim.url, None, redis_state(prefix), schema, tenants=tenants) as (one, two):
        start = requests.post(
            one.url + "/upload/v1beta/files", json={"file": {"display_name": "notes"}},
            headers={"x-goog-api-key": TOKEN, "X-Goog-Upload-Protocol": "resumable",
                     "X-Goog-Upload-Command": "start",
                     "X-Goog-Upload-Header-Content-Length": str(len(data)),
                     "X-Goog-Upload-Header-Content-Type": "text/plain"}, timeout=10)
        assert start.status_code == 200, start.text
        upload_url = start.headers["X-Goog-Upload-URL"]
        assert upload_url.startswith(one.url)
        finish = requests.post(upload_url.replace(one.url, two.url), data=data, timeout=10,
                               headers={"X-Goog-Upload-Command": "upload, finalize",
                                        "X-Goog-Upload-Offset": "0"})
        assert finish.status_code == 200, finish.text
        name = finish.json()["file"]["name"]
        # Tenant walls hold on both replicas: the file is its creator's.
        assert _get(one.url, name, TOKEN).status_code == 200
        assert _get(two.url, name, TOKEN).status_code == 200
        assert _get(one.url, name, OTHER).status_code == 404
        assert _get(two.url, name, OTHER).status_code == 404
        listed = requests.get(one.url + "/v1beta/files", headers={"x-goog-api-key": TOKEN},
                              timeout=10).json()
        assert [f["name"] for f in listed["files"]] == [name]
        other = requests.get(two.url + "/v1beta/files", headers={"x-goog-api-key": OTHER},
                             timeout=10).json()
        assert other.get("files", []) == []


def _get(url: str, name: str, token: str) -> requests.Response:
    return requests.get(f"{url}/v1beta/{name}", headers={"x-goog-api-key": token}, timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _own_redis() -> Iterator[tuple[str, Any]]:
    """A Redis server of this test's own (it is stopped and started again)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (apt-get install redis-server)"
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="gemgate-redis-")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", folder]

    def start() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return server
            except OSError:
                time.sleep(0.02)
        raise AssertionError("redis-server did not start")

    holder = {"server": start()}

    class Control:
        def stop(self) -> None:
            holder["server"].terminate()
            holder["server"].wait(5)

        def start(self) -> None:
            holder["server"] = start()

    try:
        yield f"redis://127.0.0.1:{port}/0", Control()
    finally:
        holder["server"].kill()
        shutil.rmtree(folder, ignore_errors=True)


def test_redis_restarted_under_load_no_client_sees_a_failure() -> None:
    config, projects = _solo(rpm=1000)
    with _own_redis() as (url, control), run_simulator(config) as sim, \
            _replicas(sim.url, projects, {"backend": "redis", "url": url, "replicas": 2}
                      ) as (one, two):
        statuses: list[int] = []

        def load(seconds: float) -> None:
            ends = time.monotonic() + seconds
            while time.monotonic() < ends:
                statuses.extend(a.status_code for a in _burst(one, two, 4))

        load(0.3)
        control.stop()
        load(0.5)  # served on local state, limits divided by two
        ready = requests.get(one.url + "/readyz", timeout=5).json()
        assert ready["status"] == "degraded"
        assert ready["shared"][0]["status"] == "degraded"
        view = one.admin("GET", "/admin/pool").json()
        assert view["shared"][0]["status"] == "degraded"
        control.start()
        deadline = time.monotonic() + 5
        while requests.get(one.url + "/readyz", timeout=5).json()["status"] != "ready":
            assert time.monotonic() < deadline, "never went back to Redis"
            load(0.1)
        load(0.3)
        assert statuses and set(statuses) == {200}
        assert os.environ.get("GEMGATE_TEST_KEEP") or True


class _Wall:
    """A wall clock both replicas read, that the test moves on (a new budget day)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _hammer(one: Any, two: Any, secret: str, per_replica: int = 16,
            rounds: int = 6) -> list[int]:
    """Both replicas called at concurrency `per_replica` each, `rounds` calls per thread."""
    body = {"contents": [{"parts": [{"text": "Write a long story about harbours."}]}]}

    def worker(url: str) -> list[int]:
        return [_post(url, body=body, token=secret).status_code for _ in range(rounds)]

    urls = [one.url] * per_replica + [two.url] * per_replica
    with ThreadPoolExecutor(len(urls)) as pool:
        return [status for statuses in pool.map(worker, urls) for status in statuses]


PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]


def test_a_budget_holds_across_replicas_and_resets_with_its_period() -> None:
    wall = _Wall()
    with redis_prefix() as prefix, pg_schema() as schema, run_simulator() as sim, \
            _replicas(sim.url, PAID, redis_state(prefix), schema, clock=wall,
                      ledger={"key_refresh_s": 0.2}) as (one, two):
        secret, key = one.new_key(daily_budget_usd=0.01)
        time.sleep(0.5)  # the other replica reads the new key within its refresh
        statuses = _hammer(one, two, secret)
        assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}
        costs = [row["cost_usd"] for row in _ledger_rows(schema, key["id"])]
        assert sum(costs) > 0.01  # the budget was reached ...
        assert sum(costs) <= 0.01 + max(costs)  # ... and overshot by one request at most
        # A new day: no reservation left over, no counter carried: both serve again.
        wall.offset += 86400
        assert _post(one.url, token=secret).status_code == 200
        assert _post(two.url, token=secret).status_code == 200


def test_without_shared_counters_each_replica_spends_the_whole_budget() -> None:
    """The control: memory counters on each replica let the key spend about twice."""
    with pg_schema() as schema, run_simulator() as sim, \
            _replicas(sim.url, PAID, None, schema,
                      ledger={"key_refresh_s": 0.2}) as (one, two):
        secret, key = one.new_key(daily_budget_usd=0.01)
        time.sleep(0.5)
        _hammer(one, two, secret)
        costs = [row["cost_usd"] for row in _ledger_rows(schema, key["id"])]
        assert sum(costs) > 0.01 + max(costs)


def _ledger_rows(schema: str, key_id: str) -> list[dict[str, Any]]:
    import asyncio

    import asyncpg

    from tests.shared_backends import PG_DSN

    async def read() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(PG_DSN)
        try:
            rows = await connection.fetch(
                f"SELECT * FROM {schema}.requests WHERE vkey_id = $1", key_id)
        finally:
            await connection.close()
        return [dict(row) for row in rows]

    return asyncio.run(read())


def test_redis_away_at_start_serves_degraded_and_never_shows_its_password(
        caplog: Any) -> None:
    secret = "hunter2-very-secret-password"
    url = f"redis://:{secret}@127.0.0.1:{_free_port()}/0"  # nothing listens there
    with caplog.at_level("WARNING"), run_simulator() as sim, \
            run_gateway(sim.url, state={"backend": "redis", "url": url}) as gateway:
        assert _post(gateway.url).status_code == 200  # served on local state
        ready = requests.get(gateway.url + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        shown = ready.text + gateway.admin("GET", "/admin/pool").text
        assert "hunt…word" in shown and secret not in shown
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unreachable" in logged and secret not in logged


def test_a_dead_replicas_budget_holds_expire_and_counters_do_not_drift() -> None:
    """Holds a replica took and never settled (it was killed mid-request) stop refusing the key
    after `state.reservation_ttl_s`; settled spend in Redis equals the sum of the costs."""
    import asyncio

    from gemgate.access.budgets import Budgets, Stop
    from gemgate.access.rates import KeyRates
    from gemgate.access.vkeys import KeySpec, VirtualKey
    from gemgate.config import StateConfig
    from gemgate.state.redis.counters import RedisCounters
    from gemgate.state.redis.link import Link

    key = VirtualKey.build("vk_leak", KeySpec(name="leak", daily_budget_usd=0.01), "d", "m",
                           0.0, 0.0)

    async def run(prefix: str) -> None:
        config = StateConfig(backend="redis", prefix=prefix, reservation_ttl_s=0.5)
        dead, alive = Link(config), Link(config)
        killed = RedisCounters(dead, KeyRates(), Budgets())
        survivor = RedisCounters(alive, KeyRates(), Budgets())
        for _ in range(4):  # in flight on the replica that is about to die
            stop, _ = await killed.reserve_budget(key, 0.003)
            assert stop is None
        await dead.close()  # killed: its holds are never settled
        stop, _ = await survivor.reserve_budget(key, 0.003)
        assert isinstance(stop, Stop)  # held room counts while the holds may still settle
        await asyncio.sleep(0.6)
        costs = []
        for cost in (0.004, 0.0035):
            stop, hold = await survivor.reserve_budget(key, 0.003)
            assert stop is None, "a dead replica's holds still refuse the key"
            await survivor.settle_budget(key, hold, cost)
            costs.append(cost)
        period = survivor._periods(key)[0][2]
        spent = float(await alive.client.hget(period, "spent") or 0)
        reserved = float(await alive.client.hget(period, "reserved") or 0)
        assert abs(spent - sum(costs)) < 1e-9 and abs(reserved) < 1e-9
        stop, hold = await survivor.reserve_budget(key, 0.003)  # 0.0075 spent: room left
        assert stop is None
        await survivor.settle_budget(key, hold, 0.003)
        stop, _ = await survivor.reserve_budget(key, 0.003)  # 0.0105 spent: the line crossed
        assert isinstance(stop, Stop) and abs(stop.spent_usd - 0.0105) < 1e-9
        await alive.close()

    with redis_prefix() as prefix:
        asyncio.run(run(prefix))


def _window_total(prefix: str, *parts: str) -> int:
    from tests.shared_backends import require_redis

    client = require_redis()
    try:
        return sum(int(v) for v in client.hgetall(":".join((prefix, *parts))).values())
    finally:
        client.close()


def test_a_keys_rpm_and_its_projects_are_one_decision_across_replicas() -> None:
    """A virtual key's own RPM counts with the project's quota in the same script: replicas
    share it, and a request the project has no room for takes nothing from the key."""
    config, projects = _solo(rpm=2)
    with redis_prefix() as prefix, pg_schema() as schema, run_simulator(config) as sim, \
            _replicas(sim.url, projects, redis_state(prefix), schema,
                      ledger={"key_refresh_s": 0.2}) as (one, two):
        secret, key = one.new_key(rpm=3)
        time.sleep(0.5)
        # The project has room for 2 a (2-second) minute: 2 pass, 2 are refused by it at once.
        answers = [_post(url, token=secret, **{"X-Server-Timeout": "0.5"})
                   for url in (one.url, two.url, one.url, two.url)]
        assert sorted(a.status_code for a in answers) == [200, 200, 429, 429]
        assert all("own rate limit" not in a.json()["error"]["message"]
                   for a in answers if a.status_code == 429)  # the project's refusal
        assert _window_total(prefix, "k", key["id"], "rpm") == 2  # refused: not counted
        time.sleep(MINUTE + 1.0)  # the project's minute rolls; the key's (a real one) does not
        answers = [_post(url, token=secret) for url in (one.url, two.url)]
        assert [a.status_code for a in answers] == [200, 429]  # the key's third, then its own
        refused = answers[1].json()["error"]
        assert "own rate limit (RPM 3)" in refused["message"]
        assert _upstream_429s(sim) == 0
