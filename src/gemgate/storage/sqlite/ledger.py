"""The ledger's single writer: records are group-committed, one batch at a time.

A request hands its record over and awaits the commit before its response's last byte goes
out, so a client never holds a complete answer that the ledger does not. While one batch is
being committed the next one gathers, so under load a commit carries many records and costs
each of them little. Everything else that writes the database (virtual keys, pruning) goes
through the same connection, one after another: one writer, so never "database is locked".

Where the writing runs was chosen by measurement (docs/benchmarks.md): with synchronous=normal a
commit only writes into the OS's cache, so it runs on the event loop (a thread hand-off cost
more than the write); with synchronous=full it runs on a thread of its own, as an fsync must not
stall the loop. WAL checkpoints, which do fsync, run on a side connection and thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from gemgate.ledger.record import COLUMNS, Record
from gemgate.storage.sqlite.schema import ROLLUP_BUCKET_S, connect

log = logging.getLogger("gemgate.ledger")
T = TypeVar("T")

_PRUNE_EVERY_S = 3600.0
_CHECKPOINT_EVERY_S = 1.0
_PRUNE_CHUNK = 10_000  # rows per delete, so a prune never holds the writer for long
_RETRY_PAUSE_S = (0.05, 0.2, 1.0, 5.0)

_ROLLUP_UPSERT = """
INSERT INTO usage_rollup (bucket, tenant, vkey_id, provider, project, model, requests, errors,
    cache_hits, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens, total_tokens,
    saved_usd, cost_usd)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (bucket, tenant, vkey_id, provider, project, model) DO UPDATE SET
    requests = requests + excluded.requests, errors = errors + excluded.errors,
    cache_hits = cache_hits + excluded.cache_hits, saved_usd = saved_usd + excluded.saved_usd,
    prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    candidates_tokens = candidates_tokens + excluded.candidates_tokens,
    thoughts_tokens = thoughts_tokens + excluded.thoughts_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens,
    total_tokens = total_tokens + excluded.total_tokens,
    cost_usd = cost_usd + excluded.cost_usd
"""

INSERT = (f"INSERT OR IGNORE INTO requests ({', '.join(COLUMNS)}) "
          f"VALUES ({', '.join('?' for _ in COLUMNS)})")
RollupKey = tuple[int, str, str, str, str, str]


def rollup_key(record: Record) -> RollupKey:
    bucket = int(record.ts // ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S
    return (bucket, record.tenant, record.vkey_id or "", record.provider, record.project or "",
            record.model_used or record.model_asked or "")


def _rollup_rows(records: list[Record]) -> list[tuple[object, ...]]:
    sums: dict[RollupKey, list[float]] = {}
    for r in records:
        row = sums.setdefault(rollup_key(r), [0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += r.failed
        row[2] += r.hit
        row[3] += r.prompt_tokens
        row[4] += r.candidates_tokens
        row[5] += r.thoughts_tokens
        row[6] += r.cached_tokens
        row[7] += r.total_tokens
        row[8] += r.saved_usd
        row[9] += r.cost_usd
    return [(*key, *(int(v) for v in values[:8]), values[8], values[9])
            for key, values in sums.items()]


def write_batch(connection: sqlite3.Connection, records: list[Record]) -> int:
    """Inserts the records and their rollup in one transaction; returns how many were new.
    A record already present (same request id) is neither inserted again nor counted twice."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        before = connection.total_changes
        connection.executemany(INSERT, [r.row() for r in records])
        new = records
        if connection.total_changes - before != len(records):
            # Some were there already (a retried batch): find out which, one by one.
            connection.execute("ROLLBACK")
            connection.execute("BEGIN IMMEDIATE")
            new = [r for r in records if connection.execute(INSERT, r.row()).rowcount == 1]
        connection.executemany(_ROLLUP_UPSERT, _rollup_rows(new))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return len(new)


def prune(connection: sqlite3.Connection, older_than: float) -> int:
    """Deletes request rows older than `older_than` (unix seconds), a chunk at a time. The
    rollups stay: reports over old periods keep their totals."""
    removed = 0
    while True:
        cursor = connection.execute(
            "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE ts < ? LIMIT ?)",
            (older_than, _PRUNE_CHUNK))
        removed += cursor.rowcount
        if cursor.rowcount < _PRUNE_CHUNK:
            return removed


class Ledger:
    def __init__(self, path: str | Path, synchronous: Literal["normal", "full"] = "normal",
                 retention_days: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.synchronous = path, synchronous
        self.retention_days = retention_days
        self.clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="gemgate-ledger")
        self._connection: sqlite3.Connection | None = None
        self._pending: list[tuple[Record, asyncio.Future[None] | None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._next_prune = 0.0
        self._checkpointer: asyncio.Task[None] | None = None
        self._side_executor = ThreadPoolExecutor(1, thread_name_prefix="gemgate-checkpoint")
        self._side: sqlite3.Connection | None = None
        self.committed = 0
        self.inline = synchronous == "normal"

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.inline:
            self._connection = connect(self.path, self.synchronous)
        else:
            self._connection = await loop.run_in_executor(self._executor, connect, self.path,
                                                          self.synchronous)
        # Checkpoints (copying the WAL into the database, with fsyncs) would otherwise run
        # inside an unlucky commit and stall the requests waiting on it; a side connection
        # does them instead, without blocking the writer (PASSIVE).
        await self.run(lambda db: db.execute("PRAGMA wal_autocheckpoint=0"))
        self._checkpointer = loop.create_task(self._checkpoint_regularly())

    async def _checkpoint_regularly(self) -> None:
        """Every statement on the side connection, its closing included, runs on one thread
        of its own, one after another: it is never closed under a running checkpoint."""
        loop = asyncio.get_running_loop()
        self._side = await loop.run_in_executor(self._side_executor, connect, self.path,
                                                self.synchronous, False)
        while True:
            await asyncio.sleep(_CHECKPOINT_EVERY_S)
            try:
                await loop.run_in_executor(self._side_executor, self._side.execute,
                                           "PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.warning("ledger checkpoint failed: %s", exc)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work(connection)` on the writer's thread, after what is queued before it.

        With synchronous=normal a commit is a write into the OS's cache (no fsync; the
        checkpoints that do fsync run on a side connection), tens of microseconds: cheaper
        done right on the event loop than handed to a thread and back, so it is."""
        if self.inline:
            return self._call(work)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._connection is None:
            raise sqlite3.ProgrammingError("the ledger is not open")
        return work(self._connection)

    def add(self, record: Record, wait: bool = True) -> asyncio.Future[None] | None:
        """Queues a record; the future is done when it is committed (None when not awaited:
        a cancelled stream has nobody left to wait)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] | None = loop.create_future() if wait else None
        self._pending.append((record, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        failures = 0
        await asyncio.sleep(0)  # let the requests finishing in this loop turn join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.run(functools.partial(self._write, batch=batch))
            except sqlite3.Error as exc:
                # Nothing accepted is dropped: the batch goes back to the front and is tried
                # again (the unique request id keeps a retried record from counting twice).
                self._pending[:0] = batch
                pause = _RETRY_PAUSE_S[min(failures, len(_RETRY_PAUSE_S) - 1)]
                failures += 1
                log.error("ledger write failed (%s); %d records wait, retrying in %.2fs",
                          exc, len(self._pending), pause)
                await asyncio.sleep(pause)
                continue
            failures = 0
            self.committed += len(batch)
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    def _write(self, connection: sqlite3.Connection, *,
               batch: list[tuple[Record, asyncio.Future[None] | None]]) -> None:
        write_batch(connection, [record for record, _ in batch])
        now = self.clock()
        if self.retention_days is not None and now >= self._next_prune:
            self._next_prune = now + _PRUNE_EVERY_S
            removed = prune(connection, now - self.retention_days * 86400)
            if removed:
                log.info("ledger: pruned %d records older than %s days", removed,
                         self.retention_days)

    def backlog(self) -> int:
        """Records waiting for their commit."""
        return len(self._pending)

    async def drain(self) -> None:
        """Waits until everything queued so far is committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def close(self) -> None:
        await self.drain()
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        if self._side is not None:
            await asyncio.get_running_loop().run_in_executor(self._side_executor,
                                                             self._side.close)
        self._side_executor.shutdown(wait=True)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            if self.inline:
                connection.close()
            else:
                await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                  connection.close)
        self._executor.shutdown(wait=True)
