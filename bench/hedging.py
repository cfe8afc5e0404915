"""Hedged requests against a slow tail: p99 latency with hedging off and on, and the extra
upstream calls it costs, against a simulator where 5% of calls take 2 s.

    python -m bench.hedging            # 1,000 calls each way, 16 at a time
    python -m bench.hedging --smoke    # for CI

The same gateway configuration both ways except `hedging.enabled`; each run starts fresh
processes (gateway and simulator), warms the model's latency window with 100 calls, then adds
the fault (`latency`, 2,000 ms, probability 0.05, drawn from the simulator's seeded RNG) and
times `--calls` generateContent calls. Extra calls = the simulator's count − the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
import requests

from bench.gateway import GENERATE, TOKEN, percentile, running

BODY = b'{"contents":[{"parts":[{"text":"How do relays hedge?"}]}]}'


async def _timed_calls(url: str, calls: int, concurrency: int) -> list[float]:
    timings: list[float] = []
    queue = iter(range(calls))

    async def worker(http: aiohttp.ClientSession) -> None:
        for _ in queue:
            started = time.perf_counter()
            async with http.post(url + GENERATE, data=BODY, headers={
                    "x-goog-api-key": TOKEN, "Content-Type": "application/json"}) as answer:
                await answer.read()
                assert answer.status == 200, answer.status
            timings.append(time.perf_counter() - started)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return timings


def _upstream_calls(simulator: str) -> int:
    stats = requests.get(simulator + "/_sim/stats", timeout=10).json()
    return sum(int(row["requests"]) for row in stats["by_key"].values())


def _run(hedging: bool, calls: int, concurrency: int) -> tuple[list[float], int]:
    extra = {"hedging": {"enabled": hedging, "min_samples": 50}}
    with running(extra=extra) as (setup, _):
        asyncio.run(_timed_calls(setup.gateway, 100, 4))  # the model's recent latencies
        requests.post(setup.simulator + "/_sim/faults", json={
            "kind": "latency", "delay_ms": 2000, "probability": 0.05}, timeout=10)
        before = _upstream_calls(setup.simulator)
        timings = asyncio.run(_timed_calls(setup.gateway, calls, concurrency))
        time.sleep(2.5)  # cancelled slow calls are counted when the simulator answers them
        return timings, _upstream_calls(setup.simulator) - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.calls = 100
    print(f"{args.calls} calls, {args.concurrency} at a time; 5% of upstream calls take 2 s")
    for hedging in (False, True):
        timings, upstream = _run(hedging, args.calls, args.concurrency)
        print(f"  hedging {'on ' if hedging else 'off'}: p50 {percentile(timings, 0.5) * 1000:7.1f}"
              f" ms  p95 {percentile(timings, 0.95) * 1000:7.1f} ms  p99 "
              f"{percentile(timings, 0.99) * 1000:7.1f} ms  max {max(timings) * 1000:7.1f} ms"
              f"  upstream calls {upstream} (+{upstream - args.calls}, "
              f"{(upstream - args.calls) / args.calls:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
