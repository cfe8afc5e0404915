"""Gateway processes on shared Redis and PostgreSQL: `serve --workers 2`, a replica killed with
-9 under load, PostgreSQL stopped under load, and a worker that dies being replaced."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import requests
import yaml

from gemgate.simulator import QuotaLimits, SimConfig, SimProject, run_simulator
from tests.conftest import TOKEN, run_gateway
from tests.shared_backends import (
    PG_DSN,
    pg_schema,
    pg_store,
    private_postgres,
    redis_prefix,
    redis_state,
)
from tests.test_ledger_crash import Load

FLASH = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{FLASH}:generateContent"
HI = {"contents": [{"parts": [{"text": "hi"}]}]}
ROOMY = {"*": {"rpm": 10**6, "tpm": 10**9, "rpd": 10**9}}


@contextmanager
def gateway_process(config: dict[str, Any], folder: Path, *args: str,
                    name: str = "gateway") -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"log_level": "WARNING",
                                    "tenants": [{"name": "load", "token": TOKEN}], **config}))
    log = folder / f"{name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "gemgate", "serve", "--port", "0",
                                    "--config", str(path), *args], stdout=sink,
                                   stderr=subprocess.STDOUT, cwd=folder,
                                   env={**os.environ, "GEMINI_API_KEYS": ""})
        try:
            deadline = time.monotonic() + 30
            while True:
                found = re.search(r"listening on (http://\S+)", log.read_text())
                if found:
                    break
                assert process.poll() is None, f"the gateway exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no start:\n{log.read_text()}"
                time.sleep(0.05)
            yield process, found.group(1)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()


def _pg_counts(dsn: str, schema: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch(
                f"SELECT request_id, count(*) AS n FROM {schema}.requests GROUP BY 1")
        finally:
            await connection.close()
        return {row["request_id"]: row["n"] for row in rows}

    return asyncio.run(read())


def _upstream_429s(sim: Any) -> int:
    return sum(int(row["statuses"].get("429", 0)) for row in sim.stats()["by_key"].values())


def test_two_workers_keep_a_projects_rpm_together(tmp_path: Path) -> None:
    config = SimConfig(minute_seconds=2.0, projects=[
        SimProject(name="solo", keys=["solo-key"], quotas={FLASH: QuotaLimits(rpm=4)})])
    with redis_prefix() as prefix, pg_schema() as schema, run_simulator(config) as sim, \
            gateway_process({"upstream_url": sim.url, "fallback": {},
                             "projects": [{"name": "solo", "keys": ["solo-key"],
                                           "limits": {FLASH: {"rpm": 4}}}],
                             "scheduling": {"minute_s": 2.0, "margin_s": 0.5},
                             "state": redis_state(prefix),
                             "store": pg_store(schema, str(tmp_path / "spool.db"))},
                            tmp_path, "--workers", "2") as (_, url):
        with ThreadPoolExecutor(12) as pool:  # new connections: the kernel spreads them
            answers = list(pool.map(lambda _: requests.post(
                url + GENERATE, json=HI, headers={"x-goog-api-key": TOKEN,
                                                  "Connection": "close"}, timeout=60),
                range(12)))
        assert [a.status_code for a in answers] == [200] * 12
        assert _upstream_429s(sim) == 0
        assert len(_pg_counts(PG_DSN, schema)) == 12
        # Whichever worker answers a scrape counts every worker's requests (each worker moves
        # its counts to the shared files every second).
        time.sleep(1.2)
        for _ in range(4):
            scraped = requests.get(url + "/metrics", headers={"Connection": "close"},
                                   timeout=10).text
            total = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                        if line.startswith("gemgate_requests_total{"))
            assert total == 12


def test_workers_need_the_shared_backends(tmp_path: Path) -> None:
    path = tmp_path / "gemgate.yaml"
    path.write_text(yaml.safe_dump({"projects": [{"name": "p", "keys": ["AIza" + "x" * 35]}]}))
    done = subprocess.run([sys.executable, "-m", "gemgate", "serve", "--config", str(path),
                           "--workers", "2"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "GEMINI_API_KEYS": ""})
    assert done.returncode == 2
    assert "state: {backend: redis" in done.stderr and "store: {backend: postgres" in done.stderr


def test_a_dead_worker_is_replaced_and_sigterm_drains_a_stream(tmp_path: Path) -> None:
    with redis_prefix() as prefix, pg_schema() as schema, \
            run_simulator(chunk_delay_ms=150) as sim, \
            gateway_process({"upstream_url": sim.url,
                             "projects": [{"name": "sim-paid", "tier": "tier1",
                                           "keys": ["sim-paid-key-1"], "limits": ROOMY}],
                             "state": redis_state(prefix),
                             "store": pg_store(schema, str(tmp_path / "spool.db"))},
                            tmp_path, "--workers", "2") as (supervisor, url):
        workers = _children(supervisor.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while len(_children(supervisor.pid)) < 2 or workers[0] in _children(supervisor.pid):
            assert time.monotonic() < deadline, "the dead worker was not replaced"
            time.sleep(0.1)
        for _ in range(6):  # both workers answer (new connections land on either)
            assert requests.post(url + GENERATE, json=HI, timeout=10, headers={
                "x-goog-api-key": TOKEN, "Connection": "close"}).status_code == 200
        # The workers share one response cache (in Redis): one miss, then hits on either.
        cached = {"contents": [{"parts": [{"text": "shared cache"}]}],
                  "generationConfig": {"temperature": 0}}
        before = sum(int(r["requests"]) for r in sim.stats()["by_key"].values())
        labels = [requests.post(url + GENERATE, json=cached, timeout=10, headers={
            "x-goog-api-key": TOKEN, "Connection": "close"}).headers["x-gemgate-cache"]
            for _ in range(6)]
        assert labels == ["MISS"] + ["HIT"] * 5
        assert sum(int(r["requests"]) for r in sim.stats()["by_key"].values()) == before + 1
        # A slow stream in flight when SIGTERM comes is finished, and recorded.
        stream = requests.post(url + f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse",
                               json={"contents": [{"parts": [{"text": "Write 60 words."}]}]},
                               headers={"x-goog-api-key": TOKEN}, stream=True, timeout=30)
        chunks = stream.iter_content(None)
        first = next(chunks)
        supervisor.send_signal(signal.SIGTERM)
        body = first + b"".join(chunks)
        assert b'"finishReason": "STOP"' in body or b'"finishReason":"STOP"' in body
        supervisor.wait(30)
        assert supervisor.returncode == 0
        assert stream.headers["x-gemgate-request-id"] in _pg_counts(PG_DSN, schema)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_kill_9_of_one_replica_under_load_loses_no_completed_record(tmp_path: Path) -> None:
    with redis_prefix() as prefix, pg_schema() as schema, run_simulator(chunk_delay_ms=2) as sim:
        def config(n: int) -> dict[str, Any]:
            return {"upstream_url": sim.url,
                    "projects": [{"name": "sim-paid", "tier": "tier1",
                                  "keys": ["sim-paid-key-1"], "limits": ROOMY}],
                    "state": redis_state(prefix),
                    "store": pg_store(schema, str(tmp_path / f"spool-{n}.db"))}

        with gateway_process(config(1), tmp_path, name="one") as (one, url_one), \
                gateway_process(config(2), tmp_path, name="two") as (_, url_two):
            loads = [Load(url_one, 4), Load(url_two, 4)]
            for load in loads:
                load.start()
            time.sleep(2.0)
            assert all(len(load.complete) > 20 for load in loads), "steady load first"
            os.kill(one.pid, signal.SIGKILL)
            one.wait(10)
            time.sleep(0.5)  # the other replica goes on serving
            for load in loads:
                load.stop()
            counts = _pg_counts(PG_DSN, schema)
        complete = [rid for load in loads for rid in load.complete]
        lost = [rid for rid in complete if rid not in counts]
        assert not lost, f"{len(lost)} of {len(complete)} completed requests lost"
        assert set(counts.values()) == {1}


def test_postgres_stopped_under_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    with private_postgres() as (dsn, postgres), run_simulator(chunk_delay_ms=2) as sim, \
            run_gateway(sim.url, [{"name": "sim-paid", "tier": "tier1",
                                   "keys": ["sim-paid-key-1"]}],
                        store={"backend": "postgres", "dsn": dsn, "schema": "gemgate",
                               "spool_path": str(tmp_path / "spool.db")}) as gateway:
        load = Load(gateway.url, 4)
        load.start()
        time.sleep(1.0)
        postgres.stop()
        time.sleep(10.0)  # answers go on, their records spooled
        during = len(load.complete)
        ready = requests.get(gateway.url + "/readyz", timeout=5).json()
        assert ready["status"] == "degraded"
        store = next(p for p in ready["shared"] if p["part"] == "store")
        assert store["spooled_records"] > 0
        postgres.start()
        time.sleep(1.5)
        load.stop()
        assert len(load.complete) > during > 50
        deadline = time.monotonic() + 15
        while requests.get(gateway.url + "/readyz", timeout=5).json()["status"] != "ready":
            assert time.monotonic() < deadline, "the spool was never replayed"
            time.sleep(0.2)
        counts = _pg_counts(dsn, "gemgate")
    lost = [rid for rid in load.complete if rid not in counts]
    assert not lost, f"{len(lost)} of {len(load.complete)} completed requests lost"
    assert set(counts.values()) == {1}
