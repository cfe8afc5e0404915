"""How the Redis and PostgreSQL clients were chosen: the same work through each candidate.

    python -m bench.clients      # needs coredis and psycopg[binary] installed to compare

Redis: EVALSHA of a small script, one call at a time and 10,000 in flight (a pool of 16).
PostgreSQL: `SELECT 1` round trips and batched inserts (ON CONFLICT DO NOTHING, 200 a batch).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

SCRIPT = "redis.call('INCRBY', KEYS[1], ARGV[1]); return redis.call('TIME')"
REDIS = ("127.0.0.1", 6379, 15)
DSN = "postgresql://postgres@127.0.0.1:5432/test"
CALLS = 10_000
ROWS = [(f"req-{i}", "tenant", "gemini-2.5-flash", 200, 12, 34, 0.0001) for i in range(20_000)]
TABLE = ("(request_id text primary key, tenant text, model text, status int, pin int, "
         "pout int, cost float8)")


async def _timed(call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    await call()
    started = time.perf_counter()
    for _ in range(CALLS):
        await call()
    one_at_a_time = (time.perf_counter() - started) / CALLS * 1e6
    started = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(CALLS)))
    return one_at_a_time, CALLS / (time.perf_counter() - started)


async def redis_py() -> tuple[float, float]:
    import redis.asyncio as redis

    host, port, db = REDIS
    client = redis.Redis(connection_pool=redis.BlockingConnectionPool(
        host=host, port=port, db=db, max_connections=16))
    script = client.register_script(SCRIPT)
    try:
        return await _timed(lambda: script(keys=["bench:clients"], args=[1]))
    finally:
        await client.aclose()


async def coredis_() -> tuple[float, float]:
    import coredis

    host, port, db = REDIS
    client = coredis.Redis(host=host, port=port, db=db, max_connections=16)
    async with client:
        script = client.register_script(SCRIPT)
        return await _timed(lambda: script(keys=["bench:clients"], args=[1]))


async def asyncpg_() -> tuple[float, float]:
    import asyncpg

    connection = await asyncpg.connect(DSN)
    await connection.execute(f"DROP TABLE IF EXISTS pick_a; CREATE TABLE pick_a {TABLE}")
    started = time.perf_counter()
    for _ in range(2000):
        await connection.fetchval("SELECT 1")
    round_trip = (time.perf_counter() - started) / 2000 * 1e6
    started = time.perf_counter()
    for i in range(0, len(ROWS), 200):
        await connection.executemany("INSERT INTO pick_a VALUES ($1, $2, $3, $4, $5, $6, $7) "
                                     "ON CONFLICT DO NOTHING", ROWS[i:i + 200])
    rate = len(ROWS) / (time.perf_counter() - started)
    await connection.execute("DROP TABLE pick_a")
    await connection.close()
    return round_trip, rate


async def psycopg_() -> tuple[float, float]:
    import psycopg

    connection = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    await connection.execute(f"DROP TABLE IF EXISTS pick_p; CREATE TABLE pick_p {TABLE}")
    started = time.perf_counter()
    for _ in range(2000):
        await (await connection.execute("SELECT 1")).fetchone()
    round_trip = (time.perf_counter() - started) / 2000 * 1e6
    started = time.perf_counter()
    for i in range(0, len(ROWS), 200):
        async with connection.cursor() as cursor:
            await cursor.executemany("INSERT INTO pick_p VALUES (%s, %s, %s, %s, %s, %s, %s) "
                                     "ON CONFLICT DO NOTHING", ROWS[i:i + 200])
    rate = len(ROWS) / (time.perf_counter() - started)
    await connection.execute("DROP TABLE pick_p")
    await connection.close()
    return round_trip, rate


def main() -> int:
    for name, run, unit in (("redis-py + hiredis", redis_py, "calls/s"),
                            ("coredis", coredis_, "calls/s"),
                            ("asyncpg", asyncpg_, "rows/s"), ("psycopg 3", psycopg_, "rows/s")):
        try:
            first, second = asyncio.run(run())
        except ImportError as exc:
            print(f"{name:<20} not installed ({exc.name})")
            continue
        print(f"{name:<20} one at a time {first:7.1f} µs   {second:10,.0f} {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
