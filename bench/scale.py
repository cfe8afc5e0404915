"""Scale-out (issue 15), in one run against one simulator: what the Redis state costs a request,
and what a second worker buys.

    python -m bench.scale                      # Redis at 127.0.0.1:6379, PostgreSQL's `test`
    python -m bench.scale --seconds 3 --smoke  # a few seconds, for CI

  1. the Redis state backend against the memory one: saturated throughput (wrk, 16
     connections) and added latency at a fixed rate below saturation;
  2. 1 worker against `--workers 2` (both on Redis and PostgreSQL): throughput, and the CPU
     each request costs (user + system time of the gateway's processes over the run);
  3. the Lua admission script alone: microseconds per reserve + cancel round trip.

The simulator runs on one core and the gateways on the rest; on a 2-core machine the simulator
and wrk share the cores with the workers, so the 2-worker figure is a floor (see the arithmetic
printed at the end for a bigger machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.gateway import PROJECTS, TOKEN, _fixed_rate, percentile
from bench.loadgen import free_port, process, run_wrk, wait_ready

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, and of its live children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(v) for v in fields[11:15]) / ticks  # utime stime cutime cstime
    return total


@contextmanager
def _gateway(upstream: str, state: dict[str, Any] | None, store: dict[str, Any] | None,
             workers: int = 1) -> Iterator[tuple[str, int]]:
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-scale-"))
    config: dict[str, Any] = {"projects": PROJECTS, "upstream_url": upstream,
                              "tenants": [{"name": "bench", "token": TOKEN}],
                              "log_level": "WARNING", "log_requests": False,
                              "ledger": {"path": str(folder / "gemgate.db")}}
    if state:
        config["state"] = state
    if store:
        config["store"] = {**store, "spool_path": str(folder / "spool.db")}
    (folder / "gemgate.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    with process(["serve", "--port", str(port), "--config", str(folder / "gemgate.yaml"),
                  "--workers", str(workers)], env={"GEMINI_API_KEYS": ""}) as child:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/healthz", timeout=30)
        time.sleep(0.5 if workers == 1 else 1.5)  # every worker up
        yield url, child.pid


def _redis_cost(upstream: str, seconds: float, rate: int) -> None:
    print("\n1. the Redis state backend against memory (scheduling on, ledger on SQLite)")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    results = {}
    for label, state in (("memory", None), ("redis", {"backend": "redis", "url": REDIS,
                                                      "prefix": prefix})):
        with _gateway(upstream, state, None) as (url, _):
            run_wrk(url + GENERATE, TOKEN, seconds=1)  # warm up
            loaded = run_wrk(url + GENERATE, TOKEN, seconds=seconds)
            timed = asyncio.run(_fixed_rate(url + GENERATE, TOKEN, rate, seconds))
            results[label] = (loaded, timed)
            print(loaded.line(f"gemgate, state {label}"))
            print(f"   at {rate} req/s: p50 {percentile(timed, 0.5):.2f} ms, "
                  f"p99 {percentile(timed, 0.99):.2f} ms")
    memory, redis = results["memory"], results["redis"]
    per_request = (1 / redis[0].requests_per_second - 1 / memory[0].requests_per_second) * 1e6
    p50 = percentile(redis[1], 0.5) - percentile(memory[1], 0.5)
    p99 = percentile(redis[1], 0.99) - percentile(memory[1], 0.99)
    print(f"   Redis costs {per_request:.0f} µs of gateway time per request at saturation; "
          f"added at {rate} req/s: p50 {p50:+.2f} ms, p99 {p99:+.2f} ms")


def _workers(upstream: str, seconds: float) -> None:
    print("\n2. 1 worker against --workers 2 (Redis state, PostgreSQL store, 32 connections)")
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    state = {"backend": "redis", "url": REDIS, "prefix": prefix}
    store = {"backend": "postgres", "dsn": POSTGRES, "schema": schema}
    figures = {}
    for workers in (1, 2):
        with _gateway(upstream, state, store, workers) as (url, pid):
            run_wrk(url + GENERATE, TOKEN, seconds=1, connections=32)
            before = _cpu_seconds(pid)
            loaded = run_wrk(url + GENERATE, TOKEN, seconds=seconds, connections=32)
            cpu = _cpu_seconds(pid) - before
            served = loaded.requests_per_second * round(seconds)
            figures[workers] = (loaded.requests_per_second, cpu / served * 1e6)
            print(loaded.line(f"gemgate, {workers} worker(s)"))
            print(f"   CPU per request: {figures[workers][1]:.0f} µs (user + system, all "
                  "of the gateway's processes)")
    asyncio.run(_drop_schema(schema))
    one, two = figures[1], figures[2]
    print(f"   2 workers / 1 worker: {two[0] / one[0]:.2f}x throughput on "
          f"{os.cpu_count()} cores shared with the simulator and wrk")
    print(f"   arithmetic for a bigger machine: at {two[1]:.0f} µs of CPU per request a core "
          f"serves about {1e6 / two[1]:,.0f} req/s, so N workers on N free cores about "
          f"N × {1e6 / two[1]:,.0f} req/s until Redis (one thread, see 3.) or the upstream "
          "limits it")


def _script_cost(rounds: int) -> None:
    from gemgate.config import StateConfig
    from gemgate.state import Limits
    from gemgate.state.redis.link import Link
    from gemgate.state.redis.rates import RedisRateState

    async def run() -> float:
        link = Link(StateConfig(backend="redis", url=REDIS,
                                prefix=f"bench-{uuid.uuid4().hex[:8]}"))
        state = RedisRateState(link)
        limits = Limits(10**7, 10**9, 10**9)
        started = time.perf_counter()
        for _ in range(rounds):
            reservation, _ = await state.reserve("m", 12, [("p", limits)])
            assert reservation is not None
            await state.cancel(reservation)
        took = (time.perf_counter() - started) / rounds * 1e6
        await link.close()
        return took

    took = statistics.median(asyncio.run(run()) for _ in range(3))
    print(f"\n3. one admission in Redis (reserve + cancel: two round trips, one Lua script "
          f"each): {took:.0f} µs")


async def _drop_schema(schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    sim_port = free_port()
    with process(["simulate", "--port", str(sim_port)], core=0):
        upstream = f"http://127.0.0.1:{sim_port}"
        wait_ready(upstream + "/_sim/stats")
        _redis_cost(upstream, seconds, args.rate)
        _workers(upstream, seconds)
    _script_cost(200 if args.smoke else 5_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
