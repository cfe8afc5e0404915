"""The admission decision alone: microseconds per admit and settle, with 1 and 20 projects.

    python -m bench.limiter
"""

from __future__ import annotations

import asyncio
import sys
import time

from gemgate.config import ProjectConfig
from gemgate.scheduling.limits import LimitBook
from gemgate.scheduling.scheduler import Ask, Grant, Scheduler
from gemgate.state.memory import MemoryRateState
from gemgate.upstream.pool import KeyPool

ROUNDS = 50_000


async def measure(projects: int) -> float:
    configs = [ProjectConfig(name=f"p{i}", tier="tier1", keys=[f"key-{i}-a", f"key-{i}-b"])
               for i in range(projects)]
    pool = KeyPool(configs)
    limits = LimitBook({c.name: c.tier for c in configs}, {})
    scheduler = Scheduler(MemoryRateState(), limits, pool)
    ask = Ask("gemini-2.5-flash", 12)
    started = time.perf_counter()
    for _ in range(ROUNDS):
        grant = await scheduler.admit(ask, 1.0)
        assert isinstance(grant, Grant)
        await scheduler.settle(grant, 10, counted=True)
        await scheduler.settle(grant, None, counted=False)  # keep the windows from filling up
    return (time.perf_counter() - started) / ROUNDS * 1e6


def main() -> int:
    for projects in (1, 20):
        print(f"admission with {projects:>2} project(s): {asyncio.run(measure(projects)):5.1f} µs "
              "per admit + settle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
