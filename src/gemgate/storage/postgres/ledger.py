"""The ledger in PostgreSQL: records group-committed in batches, each batch one statement.

As with SQLite, a request awaits its record's commit before its answer's last byte, and while
one batch commits the next gathers. A batch is inserted column-wise (`unnest` of one array per
column: one round trip, whatever its size) and its rollup is upserted from the rows that were
really new (`RETURNING`), in the same transaction — so a batch retried after an unclear failure
is neither inserted nor counted twice.

Nothing is lost when PostgreSQL is away: a batch that cannot be written goes to the local spool
(durable: the waiting answers go out), and a replayer moves it to PostgreSQL once it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from gemgate.ledger.record import COLUMNS, Record
from gemgate.storage.postgres.schema import (
    ROLLUP_BUCKET_S,
    drop_partitions_before,
    ensure_partition,
    month_of,
)
from gemgate.storage.sqlite.spool import Spool

log = logging.getLogger("gemgate.ledger")
_TYPES = {"ts": "float8", "status": "int4", "prompt_tokens": "int8",
          "candidates_tokens": "int8", "thoughts_tokens": "int8", "cached_tokens": "int8",
          "tool_tokens": "int8", "total_tokens": "int8", "cost_usd": "float8",
          "latency_ms": "float8", "stream": "bool", "cancelled": "bool", "attempts": "int4",
          "saved_usd": "float8"}
_REPLAY_EVERY_S = 1.0
_PRUNE_EVERY_S = 3600.0
# What "PostgreSQL is away" looks like: no connection, a lost one, or a server shutting down.
AWAY = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError)


def _insert(schema: str) -> str:
    unnest = ", ".join(f"${n}::{_TYPES.get(c, 'text')}[]" for n, c in enumerate(COLUMNS, 1))
    return f"""
    WITH fresh AS (
        INSERT INTO {schema}.requests ({', '.join(COLUMNS)})
        SELECT * FROM unnest({unnest})
        ON CONFLICT DO NOTHING
        RETURNING *
    )
    INSERT INTO {schema}.usage_rollup AS r (bucket, tenant, vkey_id, provider, project, model,
        requests, errors, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens,
        total_tokens, cost_usd, cache_hits, saved_usd)
    SELECT (floor(ts / {ROLLUP_BUCKET_S}) * {ROLLUP_BUCKET_S})::int8, tenant,
           coalesce(vkey_id, ''), provider, coalesce(project, ''),
           coalesce(model_used, model_asked, ''), count(*),
           count(*) FILTER (WHERE status >= 400 AND NOT cancelled), sum(prompt_tokens),
           sum(candidates_tokens), sum(thoughts_tokens), sum(cached_tokens), sum(total_tokens),
           sum(cost_usd), count(*) FILTER (WHERE cache IN ('HIT', 'SEMANTIC-HIT')),
           sum(saved_usd)
    FROM fresh GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (bucket, tenant, vkey_id, provider, project, model) DO UPDATE SET
        requests = r.requests + excluded.requests, errors = r.errors + excluded.errors,
        cache_hits = r.cache_hits + excluded.cache_hits,
        saved_usd = r.saved_usd + excluded.saved_usd,
        prompt_tokens = r.prompt_tokens + excluded.prompt_tokens,
        candidates_tokens = r.candidates_tokens + excluded.candidates_tokens,
        thoughts_tokens = r.thoughts_tokens + excluded.thoughts_tokens,
        cached_tokens = r.cached_tokens + excluded.cached_tokens,
        total_tokens = r.total_tokens + excluded.total_tokens,
        cost_usd = r.cost_usd + excluded.cost_usd
    """


class PgLedger:
    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str, spool: Spool,
                 retention_days: float | None, clock: Callable[[], float] = time.time) -> None:
        self._pool, self.schema, self.spool = pool, schema, spool
        self.retention_days, self.clock = retention_days, clock
        self._insert = _insert(schema)
        self._months: set[float] = set()  # partitions known to exist
        self._pending: list[tuple[Record, asyncio.Future[None] | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self._next_prune = 0.0
        self.committed = 0
        self.up = True

    def start(self) -> None:
        self._replayer = asyncio.get_running_loop().create_task(self._replay_regularly())

    def add(self, record: Record, wait: bool = True) -> asyncio.Future[None] | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] | None = loop.create_future() if wait else None
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the requests finishing in this loop turn join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            records = [record for record, _ in batch]
            try:
                await self.write(records)
            except AWAY as exc:
                self._went_away(exc)
                await asyncio.to_thread(self.spool.put, records)
            except Exception as exc:
                log.error("ledger write to PostgreSQL failed (%s): %d records spooled",
                          exc, len(records))
                await asyncio.to_thread(self.spool.put, records)
            self.committed += len(batch)
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    def _went_away(self, exc: BaseException) -> None:
        if self.up:
            log.error("PostgreSQL is unreachable (%s): ledger records go to the local spool "
                      "and are replayed when it answers", exc)
        self.up = False

    async def write(self, records: list[Record]) -> None:
        """Inserts records and their rollup in one transaction (new ones only)."""
        columns: list[list[Any]] = [[] for _ in COLUMNS]
        for record in records:
            for column, value in zip(columns, record.row(), strict=True):
                column.append(value)
        async with self._pool().acquire() as connection:
            for month in {month_of(r.ts).timestamp() for r in records} - self._months:
                await ensure_partition(connection, self.schema, month)
                self._months.add(month)
            async with connection.transaction():
                await connection.execute(self._insert, *columns)
        await self._prune_now_and_then()

    async def _prune_now_and_then(self) -> None:
        now = self.clock()
        if self.retention_days is None or now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        async with self._pool().acquire() as connection:
            dropped = await drop_partitions_before(connection, self.schema,
                                                   now - self.retention_days * 86400)
        if dropped:
            log.info("ledger: dropped partitions %s (older than %s days)", ", ".join(dropped),
                     self.retention_days)

    async def _replay_regularly(self) -> None:
        while True:
            await asyncio.sleep(_REPLAY_EVERY_S)
            try:
                await self.replay()
            except AWAY:
                continue
            except Exception as exc:
                log.error("replaying the ledger spool failed: %s", exc)

    async def replay(self) -> int:
        """Moves spooled records into PostgreSQL; returns how many."""
        moved = 0
        while True:
            spooled = await asyncio.to_thread(self.spool.take)
            if not spooled:
                break
            await self.write([record for _, record in spooled])
            await asyncio.to_thread(self.spool.forget, [row_id for row_id, _ in spooled])
            moved += len(spooled)
        if moved or not self.up:
            if not self.up:
                log.warning("PostgreSQL answers again: %d spooled ledger records replayed",
                            moved)
            self.up = True
        return moved

    def backlog(self) -> int:
        """Records waiting for their commit, and those spooled while PostgreSQL was away."""
        return len(self._pending) + self.spool.count()

    async def drain(self) -> None:
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        await self.drain()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        with contextlib.suppress(*AWAY):
            await self.replay()
