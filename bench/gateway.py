"""The gateway against the simulator, in one run: what gemgate costs on top of a direct call.

    python -m bench.gateway            # the full run (about two minutes)
    python -m bench.gateway --smoke    # a few seconds, for CI: the harness still works
    python -m bench.gateway --soak     # RSS after 1,000,000 requests instead of 100,000

Scenarios (issue 4):
  1. throughput and latency, direct to the simulator and through gemgate (wrk, 16 connections);
  2. added latency at a fixed moderate rate (below saturation);
  3. streaming: added time to first byte and per-chunk delay;
  4. 1,000 concurrent slow streams (200 ms upstream latency) through one gemgate process;
  5. RSS at idle and after N requests; time from launch to /healthz 200.
  6. the limiter's cost (scheduling off);
  7. OpenAI format (issue 7): /v1/chat/completions through gemgate (translated to Gemini and
     back) against the simulator's own OpenAI surface, which translates likewise;
  8. one always-503 key among good ones, outlier ejection on and off (issue 13).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from bench.loadgen import SMALL_CHAT, SMALL_GENERATE, free_port, process, run_wrk, wait_ready

TOKEN = "gg-bench-token-0001"
# Limits far above what one machine can send: the limiter does all its work but never makes a
# request wait, so what is measured is its cost, not its pacing.
_ROOMY = {"*": {"rpm": 10_000_000, "tpm": 10_000_000_000, "rpd": 10_000_000_000}}
PROJECTS = [{"name": "sim-free", "tier": "free", "keys": ["sim-free-key-1", "sim-free-key-2"],
             "limits": _ROOMY},
            {"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"], "limits": _ROOMY}]
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


@dataclass
class Setup:
    simulator: str
    gateway: str
    gateway_pid: int


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def running(sim_args: list[str] | None = None, scheduling: bool = True,
            extra: dict[str, object] | None = None) -> Iterator[tuple[Setup, float]]:
    """Simulator and gateway as separate processes; yields the setup and the gateway's time
    from launch to its first /healthz 200."""
    sim_port, gw_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-"))
    config = folder / "gemgate.yaml"
    config.write_text(yaml.safe_dump({"projects": PROJECTS,
                                      "scheduling": {"enabled": scheduling},
                                      "ledger": {"path": str(folder / "gemgate.db")},
                                      **(extra or {})}))
    env = {"GEMINI_API_KEYS": "", "GEMGATE_UPSTREAM_URL": f"http://127.0.0.1:{sim_port}",
           "GEMGATE_CLIENT_KEYS": TOKEN, "GEMGATE_LOG_LEVEL": "WARNING"}
    with process(["simulate", "--port", str(sim_port), *(sim_args or [])]):
        wait_ready(f"http://127.0.0.1:{sim_port}/_sim/stats")
        with process(["serve", "--port", str(gw_port), "--config", str(config)],
                     env=env) as gateway:
            ready = wait_ready(f"http://127.0.0.1:{gw_port}/healthz")  # timed from launch
            yield Setup(f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}",
                        gateway.pid), ready


# ---- 2. latency at a fixed rate ---------------------------------------------------------

async def _fixed_rate(url: str, key: str, rate: int, seconds: float) -> list[float]:
    """Open-loop: requests start on a fixed schedule whatever the answers do."""
    latencies: list[float] = []
    headers = {"x-goog-api-key": key, "content-type": "application/json"}
    body = SMALL_GENERATE.encode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:

        async def one() -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


# ---- 3. streaming -----------------------------------------------------------------------

async def _stream_timings(url: str, key: str, count: int) -> tuple[list[float], list[float]]:
    """Time to first byte, and the gaps between chunks, over `count` streams one after another."""
    ttfb, gaps = [], []
    body = b'{"contents":[{"parts":[{"text":"Write 200 words about harbours."}]}]}'
    headers = {"x-goog-api-key": key, "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                last = None
                async for _chunk in answer.content.iter_any():
                    now = time.perf_counter()
                    if last is None:
                        ttfb.append((now - started) * 1000)
                    else:
                        gaps.append((now - last) * 1000)
                    last = now
    return ttfb, gaps


# ---- 4. many slow streams ----------------------------------------------------------------

async def _concurrent_streams(url: str, streams: int) -> tuple[int, int, float]:
    body = b'{"contents":[{"parts":[{"text":"Write 40 words."}]}]}'
    headers = {"x-goog-api-key": TOKEN, "content-type": "application/json"}
    ok = failed = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal ok, failed
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    text = await answer.read()
                    good = answer.status == 200 and b'"finishReason"' in text
                    ok, failed = (ok + 1, failed) if good else (ok, failed + 1)
            except (aiohttp.ClientError, TimeoutError):
                failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(streams)))
    return ok, failed, time.perf_counter() - started


# ---- the run -----------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--soak", action="store_true", help="1,000,000 requests for RSS")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    seconds = 1.0 if args.smoke else args.seconds
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")

    with running() as (setup, ready_s):
        started_rss = rss_mb(setup.gateway_pid)
        direct_url, gateway_url = setup.simulator + GENERATE, setup.gateway + GENERATE
        run_wrk(direct_url, "sim-free-key-1", seconds=1)
        run_wrk(gateway_url, TOKEN, seconds=1)  # warm: pools filled, lazy imports done
        idle_rss = rss_mb(setup.gateway_pid)
        direct = run_wrk(direct_url, "sim-free-key-1", seconds=seconds)
        through = run_wrk(gateway_url, TOKEN, seconds=seconds)
        print("\n1. throughput, small generateContent, 16 connections")
        print(direct.line("direct to the simulator"))
        print(through.line("through gemgate"))
        ratio = through.requests_per_second / direct.requests_per_second
        print(f"   gemgate/direct throughput: {ratio:.0%}   (target ≥ 50%)")

        rate = 200 if args.smoke else 1000
        fixed_s = 1 if args.smoke else 8
        print(f"\n2. added latency at a fixed {rate} req/s (below saturation)")
        plain = asyncio.run(_fixed_rate(direct_url, "sim-free-key-1", rate, fixed_s))
        relayed = asyncio.run(_fixed_rate(gateway_url, TOKEN, rate, fixed_s))
        for label, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            added = percentile(relayed, share) - percentile(plain, share)
            print(f"   {label}: direct {percentile(plain, share):6.2f} ms   through "
                  f"{percentile(relayed, share):6.2f} ms   added {added:+6.2f} ms")
        print("   targets: added p50 ≤ 0.5 ms, p99 ≤ 2 ms")

        requests_done = 0 if args.smoke else (1_000_000 if args.soak else 100_000)
        if requests_done:
            done = 0
            while done < requests_done:
                step = run_wrk(gateway_url, TOKEN, seconds=10)
                done += int(step.requests_per_second * 10)
        after_rss = rss_mb(setup.gateway_pid)
        print("\n5. memory and start-up")
        print(f"   ready (launch → /healthz 200): {ready_s * 1000:.0f} ms   (target ≤ 1 s)")
        print(f"   RSS at start {started_rss:.1f} MB, idle after warm-up {idle_rss:.1f} MB; after "
              f"~{requests_done:,} more requests {after_rss:.1f} MB "
              f"({(after_rss / idle_rss - 1):+.0%})   (target ≤ 80 MB, flat ±10%)")

        direct_chat = setup.simulator + "/v1beta/openai/chat/completions"
        gateway_chat = setup.gateway + "/v1/chat/completions"
        run_wrk(gateway_chat, TOKEN, seconds=1, body=SMALL_CHAT, bearer=True)
        plain_chat = run_wrk(direct_chat, "sim-free-key-1", seconds=seconds, body=SMALL_CHAT,
                             bearer=True)
        chat = run_wrk(gateway_chat, TOKEN, seconds=seconds, body=SMALL_CHAT, bearer=True)
        print("\n7. OpenAI format: small chat completion, 16 connections")
        print(plain_chat.line("simulator's OpenAI surface"))
        print(chat.line("gemgate /v1/chat/completions"))
        print(f"   gemgate/direct throughput: "
              f"{chat.requests_per_second / plain_chat.requests_per_second:.0%}   "
              f"(target ≥ 50%); vs gemgate native: "
              f"{chat.requests_per_second / through.requests_per_second:.0%}")
        if plain_chat.errors or chat.errors:
            return 1

    with running(scheduling=False) as (setup, _):
        url = setup.gateway + GENERATE
        run_wrk(url, TOKEN, seconds=1)
        unlimited = run_wrk(url, TOKEN, seconds=seconds)
        print("\n6. the limiter's cost: the same load with admission switched off")
        print(unlimited.line("gemgate, scheduling off"))
        print(f"   with the limiter on: {through.requests_per_second:,.0f} req/s "
              f"({through.requests_per_second / unlimited.requests_per_second - 1:+.1%}); "
              f"p50 {through.p50_ms - unlimited.p50_ms:+.2f} ms")

    with running(["--ttfb-ms", "50", "--chunk-delay-ms", "20"]) as (setup, _):
        count = 5 if args.smoke else 40
        d_ttfb, d_gaps = asyncio.run(_stream_timings(setup.simulator + STREAM,
                                                     "sim-free-key-1", count))
        g_ttfb, g_gaps = asyncio.run(_stream_timings(setup.gateway + STREAM, TOKEN, count))
        print("\n3. streaming (simulator: 50 ms to first chunk, 20 ms between chunks)")
        print(f"   time to first byte: direct {statistics.median(d_ttfb):.2f} ms, through "
              f"{statistics.median(g_ttfb):.2f} ms, added "
              f"{statistics.median(g_ttfb) - statistics.median(d_ttfb):+.2f} ms (target ≤ 1 ms)")
        print(f"   gap between chunks: direct {statistics.median(d_gaps):.2f} ms, through "
              f"{statistics.median(g_gaps):.2f} ms (chunks are forwarded, not buffered)")

    with running(["--ttfb-ms", "200", "--chunk-delay-ms", "50"]) as (setup, _):
        streams = 100 if args.smoke else 1000
        ok, failed, took = asyncio.run(_concurrent_streams(setup.gateway + STREAM, streams))
        print(f"\n4. {streams} concurrent streams, 200 ms to first chunk upstream")
        print(f"   completed {ok}, failed {failed}, in {took:.2f} s; gateway RSS "
              f"{rss_mb(setup.gateway_pid):.1f} MB")
        if failed:
            return 1
    if _one_bad_key(seconds) != 0:
        return 1
    return 0 if direct.errors == 0 and through.errors == 0 else 1


def _one_bad_key(seconds: float) -> int:
    """8. One key of three always answers 503 (issue 13): outlier ejection on (the default)
    against off (a threshold never reached), same load."""
    print("\n8. one always-503 key among good ones (16 connections; and at 200 req/s)")
    never = {"outliers": {"consecutive_failures": 1_000_000_000}}
    for label, extra in (("ejection on", None), ("ejection off", never)):
        with running(extra=extra) as (setup, _):
            rule = b'{"kind": "503", "key": "sim-free-key-2"}'
            asyncio.run(_post(setup.simulator + "/_sim/faults", rule))
            url = setup.gateway + GENERATE
            run_wrk(url, TOKEN, seconds=1)
            loaded = run_wrk(url, TOKEN, seconds=seconds)
            timed = asyncio.run(_fixed_rate(url, TOKEN, 200, 1 if seconds <= 1 else 5))
            print(loaded.line(f"gemgate, {label}"))
            print(f"   at 200 req/s: p50 {percentile(timed, 0.5):.2f} ms, p99 "
                  f"{percentile(timed, 0.99):.2f} ms")
            if loaded.errors:
                return 1
    return 0


async def _post(url: str, body: bytes) -> None:
    async with aiohttp.ClientSession() as http, http.post(url, data=body) as answer:
        answer.raise_for_status()


if __name__ == "__main__":
    sys.exit(main())
