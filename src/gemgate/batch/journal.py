"""What a batch run has done, kept beside its output (`OUT.jsonl.journal`, SQLite in WAL mode):
each answered line's output, committed as soon as it arrives, by its place in the input. A
commit in the WAL survives the process being killed (`kill -9`), so a re-run skips every line
already done and never calls it again; the output file is written from the journal, in input
order, once every line is done.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS done (
    seq INTEGER PRIMARY KEY,    -- the line's place in the input (a repeated id is its own line)
    id TEXT NOT NULL,
    ok INTEGER NOT NULL,        -- 1: an answer, 0: an error (re-tried with --retry-failed)
    line BLOB NOT NULL,         -- the output line
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (      -- --mode google: the Batch API jobs of this run
    name TEXT PRIMARY KEY,             -- batches/…
    model TEXT NOT NULL,
    lines TEXT NOT NULL,               -- the input places it carries, as a JSON list
    state TEXT NOT NULL
);
"""


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def bind(self, source: str) -> str | None:
        """Ties the journal to its input; the input a journal was made for, if another."""
        found = self.db.execute("SELECT value FROM run WHERE name = 'input'").fetchone()
        if found is None:
            self.db.execute("INSERT INTO run VALUES ('input', ?)", (source,))
            return None
        return None if found[0] == source else str(found[0])

    def done(self, retry_failed: bool) -> set[int]:
        """The input lines (by place) already answered; with `retry_failed`, only the good."""
        where = " WHERE ok = 1" if retry_failed else ""
        return {row[0] for row in self.db.execute(f"SELECT seq FROM done{where}")}

    def totals(self) -> tuple[int, int, int, float]:
        """(lines done, of which failed, tokens, cost) so far."""
        row = self.db.execute("SELECT count(*), coalesce(sum(1 - ok), 0), coalesce(sum(tokens), "
                              "0), coalesce(sum(cost_usd), 0) FROM done").fetchone()
        return int(row[0]), int(row[1]), int(row[2]), float(row[3])

    def keep(self, line_id: str, seq: int, ok: bool, output: bytes, tokens: int,
             cost_usd: float) -> None:
        self.db.execute("INSERT OR REPLACE INTO done VALUES (?, ?, ?, ?, ?, ?)",
                        (seq, line_id, int(ok), output, tokens, cost_usd))

    def keep_job(self, name: str, model: str, seqs: list[int]) -> None:
        self.db.execute("INSERT INTO jobs VALUES (?, ?, ?, 'BATCH_STATE_PENDING')",
                        (name, model, orjson.dumps(seqs).decode()))

    def jobs(self) -> list[tuple[str, str, str]]:
        """(name, model, last state seen) of every job of this run."""
        return [(r[0], r[1], r[2]) for r in
                self.db.execute("SELECT name, model, state FROM jobs ORDER BY rowid")]

    def job_lines(self, name: str) -> list[int]:
        found = self.db.execute("SELECT lines FROM jobs WHERE name = ?", (name,)).fetchone()
        return list(orjson.loads(found[0])) if found else []

    def end_job(self, name: str, state: str) -> None:
        self.db.execute("UPDATE jobs SET state = ? WHERE name = ?", (state, name))

    def outputs(self) -> Iterator[bytes]:
        for (line,) in self.db.execute("SELECT line FROM done ORDER BY seq"):
            yield bytes(line)

    def close(self) -> None:
        self.db.close()
