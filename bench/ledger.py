"""The ledger: group-commit throughput, and usage reports over a million records.

    python -m bench.ledger              # 1,000,000 records over 30 days (about a minute to fill)
    python -m bench.ledger --smoke      # 50,000, for CI
    python -m bench.ledger --postgres postgresql://postgres@127.0.0.1:5432/test
                                        # the same on PostgreSQL (a schema of its own, dropped)

Reports read the 15-minute rollup plus the rows of the range's two partial buckets; the
"direct" figure is the same question asked of the request rows alone (a GROUP BY over every
row in range), as a ledger without rollups would have to.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from gemgate.ledger.record import Record
from gemgate.storage.sqlite import reports
from gemgate.storage.sqlite.ledger import Ledger, write_batch
from gemgate.storage.sqlite.schema import connect, read_only

DAY = 86400.0


def fake(n: int, ts: float, rng: random.Random) -> Record:
    prompt, output = rng.randint(5, 3000), rng.randint(1, 1500)
    member = rng.randrange(40)
    return Record(
        ts=ts, request_id=f"{n:016x}", tenant=f"member-{member}",
        vkey_id=f"vk_{member:012x}", provider="gemini",
        project=f"project-{rng.randrange(8)}", key_mask="AIza…abcd",
        model_asked="gemini-2.5-flash",
        model_used=rng.choice(["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"]),
        action="generateContent", status=200, problem=None, prompt_tokens=prompt,
        candidates_tokens=output, thoughts_tokens=0, cached_tokens=0, tool_tokens=0,
        total_tokens=prompt + output, cost_usd=(prompt * 0.3 + output * 2.5) / 1e6,
        latency_ms=rng.uniform(200, 4000), stream=rng.random() < 0.5, cancelled=False,
        attempts=1, attempt_log="project-1/200/812ms", priority="normal", client_ip="10.0.0.7")


def fill(path: Path, rows: int, days: float) -> float:
    """Writes `rows` records spread over `days`, in batches like the writer's; seconds taken."""
    rng = random.Random(1)
    now = time.time()
    db = connect(path)
    started = time.perf_counter()
    batch: list[Record] = []
    for n in range(rows):
        batch.append(fake(n, now - days * DAY * (1 - n / rows), rng))
        if len(batch) == 2000:
            write_batch(db, batch)
            batch = []
    if batch:
        write_batch(db, batch)
    db.close()
    return time.perf_counter() - started


def timed_report(path: Path, by: str, since: str) -> tuple[float, int]:
    started = time.perf_counter()
    with read_only(path) as db:
        report = reports.usage_report(db, by, reports.parse_when(since))
    return time.perf_counter() - started, report.totals["requests"]


def timed_direct(path: Path, by: str, since: str) -> float:
    column = {"tenant": "tenant", "model": "model_used", "project": "project",
              "day": "date(ts, 'unixepoch')"}[by]
    started = time.perf_counter()
    with read_only(path) as db:
        db.execute(f"SELECT {column}, COUNT(*), SUM(prompt_tokens), SUM(candidates_tokens), "
                   "SUM(total_tokens), SUM(cost_usd) FROM requests NOT INDEXED "
                   "WHERE ts >= ? GROUP BY 1", (reports.parse_when(since),)).fetchall()
    return time.perf_counter() - started


async def commit_rate(path: Path, records: int, concurrency: int) -> tuple[float, float]:
    """Records per second through the group-committing writer, with `concurrency` requests
    each awaiting its own commit (as the gateway's do), and the mean commit wait in ms."""
    ledger = Ledger(path)
    await ledger.open()
    rng = random.Random(2)
    waits: list[float] = []
    counter = iter(range(10**9, 10**10))

    async def client() -> None:
        for _ in range(records // concurrency):
            started = time.perf_counter()
            future = ledger.add(fake(next(counter), time.time(), rng))
            assert future is not None
            await future
            waits.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await ledger.close()
    return len(waits) / elapsed, sum(waits) / len(waits) * 1000


# ---- PostgreSQL ---------------------------------------------------------------------------

async def postgres(dsn: str, rows: int, commits: int) -> None:
    """Group commit and reports through the PostgreSQL store, in a schema of its own."""
    from gemgate.config import LedgerConfig, StoreConfig
    from gemgate.storage.postgres.store import PgStore

    schema = f"bench_{random.randrange(16**8):08x}"
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-pg-"))
    store = PgStore(StoreConfig.model_validate({"backend": "postgres", "dsn": dsn,
                                                "schema": schema,
                                                "spool_path": str(folder / "spool.db")}),
                    LedgerConfig(retention_days=None))
    await store.open()
    try:
        rng = random.Random(2)
        counter = iter(range(10**9, 10**10))
        for concurrency in (1, 64):
            waits: list[float] = []

            async def client(waits: list[float] = waits, rounds: int = commits // concurrency
                             ) -> None:
                for _ in range(rounds):
                    started = time.perf_counter()
                    future = store.ledger.add(fake(next(counter), time.time(), rng))
                    assert future is not None
                    await future
                    waits.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(concurrency)))
            rate = len(waits) / (time.perf_counter() - started)
            print(f"postgres group commit, {concurrency:>2} waiting requests: {rate:8,.0f} "
                  f"records/s, mean wait for the commit {sum(waits) / len(waits) * 1000:.2f} ms")
        rng, now = random.Random(1), time.time()
        started = time.perf_counter()
        batch: list[Record] = []
        for n in range(rows):
            batch.append(fake(n, now - 30 * DAY * (1 - n / rows), rng))
            if len(batch) == 2000:
                await store.ledger.write(batch)
                batch = []
        if batch:
            await store.ledger.write(batch)
        seconds = time.perf_counter() - started
        print(f"postgres: filled {rows:,} records over 30 days in {seconds:.1f}s "
              f"({rows / seconds:,.0f}/s in batches of 2,000, rollup included)")
        for by in ("tenant", "model", "project", "day"):
            for since in ("7d", "30d"):
                started = time.perf_counter()
                await store.ledger.report(by, reports.parse_when(since), None, "UTC")
                took = time.perf_counter() - started
                print(f"postgres report --by {by:<8} --since {since:<4}{took * 1000:>8.0f}ms")
    finally:
        async with store.pool().acquire() as connection:
            await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="50,000 rows, fewer commits")
    parser.add_argument("--postgres", metavar="DSN", help="measure the PostgreSQL store")
    args = parser.parse_args()
    rows = 50_000 if args.smoke else args.rows
    if args.postgres:
        asyncio.run(postgres(args.postgres, rows, 2_000 if args.smoke else 20_000))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-ledger-"))

    for concurrency in (1, 64):
        rate, wait = asyncio.run(commit_rate(folder / "commits.db",
                                             2_000 if args.smoke else 20_000, concurrency))
        print(f"group commit, {concurrency:>2} waiting requests: {rate:8,.0f} records/s, "
              f"mean wait for the commit {wait:.2f} ms")

    seconds = fill(folder / "ledger.db", rows, 30)
    size = sum(p.stat().st_size for p in folder.glob("ledger.db*")) / 1e6
    print(f"filled {rows:,} records over 30 days in {seconds:.1f}s "
          f"({rows / seconds:,.0f}/s in batches of 2,000); database {size:.0f} MB")
    with sqlite3.connect(folder / "ledger.db") as db:
        rollups = db.execute("SELECT COUNT(*) FROM usage_rollup").fetchone()[0]
    print(f"rollup rows: {rollups:,}")
    print(f"{'report':<22}{'rows in range':>14}{'gemgate':>10}{'direct':>10}{'ratio':>8}")
    for by in ("tenant", "model", "project", "day"):
        for since in ("7d", "30d"):
            took, count = timed_report(folder / "ledger.db", by, since)
            direct = timed_direct(folder / "ledger.db", by, since)
            print(f"--by {by:<8} --since {since:<4}{count:>14,}{took * 1000:>8.0f}ms"
                  f"{direct * 1000:>8.0f}ms{direct / took:>7.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
