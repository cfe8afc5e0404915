"""The real gateway in front of the real simulator, over real HTTP on loopback — all on one event
loop whose clock is virtual (the `looptime` library): when nothing is ready to run, the loop
jumps straight to its next timer. Both sides read that loop's clock for their quota windows, so
scheduling tests live through real 60-second minutes in milliseconds, and a request's wait is
measured in the same time the windows are.

Why not a shorter real minute: with a 2-second minute a loaded CI machine's delay between the
gateway's admission and the simulator's count was a visible part of a window (flaky 429s), and
the tests slept through about 55 s of windows. Here I/O takes no virtual time at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import looptime

from gemgate.app import build_app
from gemgate.serving import listening_socket, start_app
from gemgate.simulator import SimConfig
from gemgate.simulator.app import build_app as build_simulator
from gemgate.simulator.core import Simulator
from tests.conftest import TOKEN, gateway_settings


def in_virtual_time(test: Callable[[], Awaitable[None]]) -> None:
    """Runs `test` on a fresh virtual-time loop (a selector loop: uvloop cannot be patched)."""
    loop = looptime.patch_event_loop(asyncio.SelectorEventLoop(), start=1000.0)
    try:
        loop.run_until_complete(test())
    finally:
        loop.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    waited: float  # virtual seconds from sending to the whole answer

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


@dataclass
class Stack:
    sim: Simulator
    url: str
    session: aiohttp.ClientSession

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def post(self, path: str, body: Any, token: str = TOKEN, **headers: str) -> Answer:
        started = self.now()
        async with self.session.post(self.url + path, json=body, headers={
                "x-goog-api-key": token, **headers}) as answer:
            content = await answer.read()
            return Answer(answer.status, dict(answer.headers), content, self.now() - started)

    def upstream_429s(self) -> int:
        return sum(int(row["statuses"].get("429", 0))
                   for row in self.sim.stats()["by_key"].values())


@asynccontextmanager
async def stack(config: SimConfig, projects: list[dict[str, Any]] | None = None,
                **fields: Any) -> AsyncIterator[Stack]:
    """A simulator and a gateway in front of it, both served on the running (virtual) loop."""
    loop = asyncio.get_running_loop()
    simulator = Simulator(config, clock=loop.time)
    sim_socket = listening_socket("127.0.0.1", 0)
    sim_runner = await start_app(build_simulator(simulator), sim_socket)
    sim_url = f"http://127.0.0.1:{sim_socket.getsockname()[1]}"
    settings = gateway_settings(sim_url, projects, **fields)
    gateway_socket = listening_socket("127.0.0.1", 0)
    gateway_runner = await start_app(build_app(settings, time.time, monotonic=loop.time),
                                     gateway_socket)
    url = f"http://127.0.0.1:{gateway_socket.getsockname()[1]}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            yield Stack(simulator, url, session)
    finally:
        await gateway_runner.cleanup()
        await sim_runner.cleanup()
