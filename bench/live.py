"""Live API sessions through one gateway process: memory and CPU per session, and the latency
a relayed frame gains, against the simulator's Live surface in the same run.

    python -m bench.live                 # 200 sessions, 20 s of traffic
    python -m bench.live --smoke         # for CI: 20 sessions, 2 s

What is measured (the client, the simulator and the gateway share this machine's cores):
1. Memory: the gateway's RSS with no session, then with `--sessions` open (set up, idle).
2. Frame latency: each session sends a 100 ms audio chunk (3,200 bytes of 16 kHz PCM) as
   `realtimeInput` and times the first frame of the answer (the simulator echoes it back);
   one session at a time (what a frame gains on an idle gateway), then all sessions at once
   at `--rate` chunks per second each. The same is done straight to the simulator; what the
   gateway adds is the difference of the medians.
3. CPU: the gateway's CPU seconds (/proc) over the loaded phase, per session and per frame.
Plain ws:// on loopback: TLS would cost the same with or without the gateway in between on the
client's side, and the relay's own cost is what this bench is for.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import time

import aiohttp
import orjson

from bench.gateway import PROJECTS, TOKEN, percentile, rss_mb, running

SERVICE = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = orjson.dumps({"setup": {"model": "models/gemini-2.5-flash",
                                "generationConfig": {"responseModalities": ["AUDIO"]}}})
CHUNK = orjson.dumps({"realtimeInput": {"audio": {
    "mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(bytes(3200)).decode()}}})


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _open(http: aiohttp.ClientSession, url: str,
                key: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url.replace("http://", "ws://") + SERVICE,
                               headers={"x-goog-api-key": key}, max_msg_size=0)
    await ws.send_bytes(SETUP)
    answer = await ws.receive()
    assert b"setupComplete" in answer.data, answer
    return ws


async def _round_trip(ws: aiohttp.ClientWebSocketResponse) -> float:
    """Seconds from sending a chunk to its echo's first frame; the rest of the turn read."""
    started = time.perf_counter()
    await ws.send_bytes(CHUNK)
    first = await ws.receive()
    took = time.perf_counter() - started
    assert b"modelTurn" in first.data, first
    while b"usageMetadata" not in (await ws.receive()).data:
        pass
    return took


async def _loaded(sockets: list[aiohttp.ClientWebSocketResponse], rate: float,
                  seconds: float) -> list[float]:
    """Every session sends `rate` chunks a second for `seconds`; the round trips."""
    timings: list[float] = []

    async def talk(ws: aiohttp.ClientWebSocketResponse, offset: float) -> None:
        await asyncio.sleep(offset)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            timings.append(await _round_trip(ws))
            await asyncio.sleep(1 / rate)

    await asyncio.gather(*(talk(ws, i / len(sockets) / rate) for i, ws in enumerate(sockets)))
    return timings


async def _measure(url: str, key: str, sessions: int, rate: float, seconds: float,
                   pid: int | None) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        before = rss_mb(pid) if pid else 0.0
        sockets = [await _open(http, url, key) for _ in range(sessions)]
        await asyncio.sleep(1.0)
        figures = {"rss_per_session_kb": (rss_mb(pid) - before) * 1024 / sessions
                   if pid else 0.0, "rss_mb": rss_mb(pid) if pid else 0.0}
        alone = [await _round_trip(sockets[i % sessions]) for i in range(300)]
        cpu = _cpu_s(pid) if pid else 0.0
        started = time.perf_counter()
        loaded = await _loaded(sockets, rate, seconds)
        elapsed = time.perf_counter() - started
        if pid:
            used = _cpu_s(pid) - cpu
            figures["cpu_share_per_session"] = used / elapsed / sessions
            figures["cpu_us_per_chunk"] = used / len(loaded) * 1e6
        for ws in sockets:
            await ws.close()
    figures.update(alone_p50=statistics.median(alone) * 1000,
                   loaded_p50=statistics.median(loaded) * 1000,
                   loaded_p99=percentile(loaded, 0.99) * 1000, chunks=len(loaded))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2.0, help="chunks/s per session")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.sessions, args.seconds = 20, 2.0
    roomy = [{**p, "live_sessions": 10_000} for p in PROJECTS]
    extra = {"projects": roomy, "live": {"max_sessions_per_tenant": 10_000}}
    with running(extra=extra) as (setup, _):
        direct = asyncio.run(_measure(setup.simulator, "sim-paid-key-1", args.sessions,
                                      args.rate, args.seconds, None))
        through = asyncio.run(_measure(setup.gateway, TOKEN, args.sessions, args.rate,
                                       args.seconds, setup.gateway_pid))
    print(f"{args.sessions} Live sessions, {args.rate:g} chunks/s each for {args.seconds:g} s")
    print(f"  gateway RSS with them open: {through['rss_mb']:.1f} MB, "
          f"{through['rss_per_session_kb']:.1f} KB per session")
    print(f"  gateway CPU: {through['cpu_share_per_session'] * 100:.3f}% of a core per session "
          f"at this rate, {through['cpu_us_per_chunk']:.0f} µs per chunk's round trip "
          "(1 frame up, 3 down)")
    print(f"  round trip, one at a time: direct p50 {direct['alone_p50']:.2f} ms, through "
          f"gemgate {through['alone_p50']:.2f} ms: added "
          f"{through['alone_p50'] - direct['alone_p50']:.2f} ms")
    print(f"  round trip, all at once: direct p50 {direct['loaded_p50']:.2f} ms / p99 "
          f"{direct['loaded_p99']:.2f}, through gemgate p50 {through['loaded_p50']:.2f} ms / "
          f"p99 {through['loaded_p99']:.2f}: added p50 "
          f"{through['loaded_p50'] - direct['loaded_p50']:.2f} ms "
          f"({through['chunks']:.0f} chunks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
