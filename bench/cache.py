"""The response cache (issue 16): what a hit is worth, what a miss costs, what entries weigh.

    python -m bench.cache            # about a minute
    python -m bench.cache --smoke    # a few seconds, for CI

  1. 100% hits through gemgate against calls direct to the upstream, in one run: the upstream
     is the simulator answering after a realistic 300 ms (a short Gemini answer) and, for the
     floor, after 0 ms;
  2. the cost of a miss: the cache's lookup and keeping of a whole answer, in-process (µs);
  3. memory: 10,000 entries of a typical short answer in the memory backend.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc

import orjson

from bench.gateway import TOKEN, running
from bench.loadgen import run_wrk

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
HIT_BODY = ('{"contents":[{"role":"user","parts":[{"text":"Hello, how are you?"}]}],'
            '"generationConfig":{"temperature":0}}')


def _hits(seconds: float) -> None:
    print("1. 100% hits through gemgate against the upstream itself (16 connections)")
    for latency in (300, 0):
        with running(["--latency-ms", str(latency)]) as (setup, _):
            direct = run_wrk(setup.simulator + GENERATE, "sim-free-key-1", seconds=seconds,
                             body=HIT_BODY)
            run_wrk(setup.gateway + GENERATE, TOKEN, seconds=1, body=HIT_BODY)  # warm: 1 miss
            hits = run_wrk(setup.gateway + GENERATE, TOKEN, seconds=seconds, body=HIT_BODY)
        print(direct.line(f"upstream, {latency} ms answers"))
        print(hits.line("gemgate, every call a hit"))
        print(f"   hits / upstream: {hits.requests_per_second / direct.requests_per_second:.2f}x"
              "   (target ≥ 1)")


def _miss_cost(rounds: int) -> None:
    from gemgate.cache.stage import ResponseCache
    from gemgate.cache.store import MemoryCache
    from gemgate.config import CacheConfig
    from gemgate.core.answer import Answer
    from gemgate.core.call import Call, Tenant
    from gemgate.prices import PriceBook

    answer_body = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "A harbour is a sheltered body of water. " * 20}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 180}})
    cache = ResponseCache(CacheConfig(), MemoryCache(1 << 30), PriceBook())
    tenant = Tenant("bench")

    async def run() -> float:
        started = time.perf_counter()
        for n in range(rounds):
            parsed = {"contents": [{"role": "user", "parts": [{"text": f"question {n}"}]}],
                      "generationConfig": {"temperature": 0}}
            call = Call(request_id=str(n), method="POST", version="v1beta",
                        path="models/gemini-2.5-flash:generateContent", query="", headers={},
                        body=b"", tenant=tenant, model="gemini-2.5-flash",
                        action="generateContent", parsed=parsed)
            call.deadline = call.started + 60
            assert await cache.lookup(call) is None
            await cache.keep_whole(call, Answer(200, body=answer_body))
        return (time.perf_counter() - started) / rounds * 1e6

    took = asyncio.run(run())
    print(f"\n2. a miss: lookup, then the answer checked and kept: {took:.0f} µs "
          f"(answer of {len(answer_body):,} bytes)")


def _memory(entries: int) -> None:
    from gemgate.cache.entry import entry_from
    from gemgate.cache.store import CacheKey, MemoryCache

    body = orjson.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "A harbour is a sheltered body of water. " * 20}]}, "finishReason": "STOP"}]})
    cache = MemoryCache(1 << 34)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]

    async def fill() -> None:
        for n in range(entries):
            key = CacheKey("tenant:bench", "gemini-2.5-flash", f"{n:064x}")
            await cache.put(key, entry_from("gemini-2.5-flash", body + b" " * (n % 7), [],
                                            {"promptTokenCount": 8}, 0.0001), 3600)

    asyncio.run(fill())
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    print(f"\n3. memory: {entries:,} entries of {len(body):,}-byte answers: {used / 1e6:.1f} MB "
          f"({used / entries:,.0f} bytes an entry, {len(body):,} of them the answer)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    _hits(1.0 if args.smoke else 6.0)
    _miss_cost(200 if args.smoke else 20_000)
    _memory(1_000 if args.smoke else 10_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
