"""A durable local spool for ledger records that could not reach a shared database.

When PostgreSQL is unreachable the answer must still wait for its record to be durable
somewhere: the batch is committed here (a small SQLite file, synchronous=FULL) and the request
goes on. A replayer moves spooled records to PostgreSQL when it answers again; the database's
unique (request_id, ts) makes a record replayed twice (a crash between the insert and the
delete here) count once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from gemgate.ledger.record import COLUMNS, Record


class Spool:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                  timeout=10.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS spooled (id INTEGER PRIMARY KEY, "
                        "record TEXT NOT NULL)")

    def put(self, records: list[Record]) -> None:
        """Durable when this returns (one transaction, one fsync for the batch)."""
        self._in_one_transaction("INSERT INTO spooled (record) VALUES (?)",
                                 [(orjson.dumps(r.row()).decode(),) for r in records])

    def _in_one_transaction(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(sql, rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def take(self, limit: int = 1000) -> list[tuple[int, Record]]:
        """The oldest spooled records (left in place until `forget`)."""
        rows = self.db.execute("SELECT id, record FROM spooled ORDER BY id LIMIT ?", (limit,))
        return [(row_id, Record(**dict(zip(COLUMNS, orjson.loads(raw), strict=True))))
                for row_id, raw in rows]

    def forget(self, ids: list[int]) -> None:
        self._in_one_transaction("DELETE FROM spooled WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM spooled").fetchone()[0])

    def close(self) -> None:
        self.db.close()
