"""The gateway's SQLite database: opened in WAL mode, migrated by numbered steps.

`PRAGMA user_version` holds the number of the last step applied. Each step runs in its own
transaction, so a crash mid-migration leaves the previous version intact. Steps are only ever
appended: a released step is never edited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from gemgate.storage.report_sql import ROLLUP_BUCKET_S

__all__ = ["ROLLUP_BUCKET_S", "connect", "migrate", "read_only"]

_KEYS_VERSION_TRIGGERS = "\n".join(
    f"CREATE TRIGGER vkeys_{event.lower()} AFTER {event} ON vkeys BEGIN "
    "UPDATE meta SET value = value + 1 WHERE name = 'keys_version'; END;"
    for event in ("INSERT", "UPDATE", "DELETE"))

MIGRATIONS: list[str] = [
    # 1: the ledger, its 15-minute rollup (what reports and budgets read), virtual keys.
    """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,                 -- unix seconds, when the request arrived
        request_id TEXT NOT NULL UNIQUE,  -- x-gemgate-request-id; unique, so never doubled
        tenant TEXT NOT NULL,
        vkey_id TEXT,
        provider TEXT NOT NULL,
        project TEXT,
        key_mask TEXT,
        model_asked TEXT,
        model_used TEXT,
        action TEXT,
        status INTEGER NOT NULL,
        problem TEXT,
        prompt_tokens INTEGER NOT NULL,
        candidates_tokens INTEGER NOT NULL,
        thoughts_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        tool_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        latency_ms REAL NOT NULL,
        stream INTEGER NOT NULL,
        cancelled INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        attempt_log TEXT,
        priority TEXT,
        client_ip TEXT
    );
    CREATE INDEX requests_ts ON requests(ts);
    CREATE TABLE usage_rollup (
        bucket INTEGER NOT NULL,          -- unix seconds at the start of a 15-minute bucket
        tenant TEXT NOT NULL,
        vkey_id TEXT NOT NULL,            -- '' for tenants from the configuration
        provider TEXT NOT NULL,
        project TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        candidates_tokens INTEGER NOT NULL,
        thoughts_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        PRIMARY KEY (bucket, tenant, vkey_id, provider, project, model)
    ) WITHOUT ROWID;
    CREATE INDEX usage_rollup_vkey ON usage_rollup(vkey_id, bucket);
    CREATE TABLE vkeys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,      -- SHA-256 of the secret; the secret is never stored
        mask TEXT NOT NULL,
        spec TEXT NOT NULL,               -- the key's rights, as JSON
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE UNIQUE INDEX vkeys_active_name ON vkeys(name) WHERE revoked_at IS NULL;
    CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('keys_version', 0);
    """ + _KEYS_VERSION_TRIGGERS,
    # 2: who owns each file, cache, batch, … created through gemgate (upstream/affinity.py).
    """
    CREATE TABLE resources (
        name TEXT PRIMARY KEY,            -- files/abc, cachedContents/xyz, batches/…
        tenant TEXT NOT NULL,             -- Tenant.id of its creator
        project TEXT NOT NULL,            -- the project that holds it
        created_at REAL NOT NULL
    );
    """,
    # 3: the response cache: which requests it answered, and what that saved.
    """
    ALTER TABLE requests ADD COLUMN cache TEXT;
    ALTER TABLE requests ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE usage_rollup ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_rollup ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0;
    """,
    # 4: the operator's changes to the upstream pool (upstream/keyring.py), the audit log, and
    # the Requests page's search by tenant.
    """
    CREATE TABLE upstream_keys (
        key_id TEXT PRIMARY KEY,          -- a digest prefix of the key (secrets.key_id)
        project TEXT NOT NULL,
        tier TEXT NOT NULL,
        tag TEXT NOT NULL,
        secret TEXT,                      -- only for a key added at run time; NULL once removed
        held INTEGER NOT NULL,
        removed INTEGER NOT NULL,
        changed_at REAL NOT NULL
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX requests_tenant_ts ON requests(tenant, ts);
    CREATE INDEX requests_failed_ts ON requests(ts) WHERE status >= 400;
    CREATE TABLE metered (
        name TEXT PRIMARY KEY,            -- batches/… or files/…: results metered once
        ts REAL NOT NULL
    );
    """,
    # 5: tokens by modality (a Live session's audio and text), where any was not text.
    """
    ALTER TABLE requests ADD COLUMN modalities TEXT;
    """,
    # 6: what the guardrails found and did (counts per detector and rule, never a value).
    """
    ALTER TABLE requests ADD COLUMN guarded TEXT;
    """,
]


class SchemaError(Exception):
    pass


def connect(path: str | Path, synchronous: Literal["normal", "full"] = "normal",
            check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to the migrated database, creating the file when it is new.

    WAL lets reports and key lookups read while the ledger writes. With synchronous=NORMAL a
    commit survives the gateway being killed (it is in the WAL file) but not a power cut;
    FULL also fsyncs every commit (group commit keeps that affordable)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), isolation_level=None, timeout=10.0,
                                 check_same_thread=check_same_thread)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous.upper()}")
    connection.execute("PRAGMA foreign_keys=ON")
    migrate(connection)
    return connection


@contextmanager
def read_only(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A reading connection (reports): WAL lets it read while the writer writes."""
    if not Path(path).is_file():
        raise SchemaError(f"no gemgate database at {path}: start the gateway once, or pass "
                          "--db / --config naming the right file")
    connection = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True,
                                 timeout=10.0)
    try:
        yield connection
    finally:
        connection.close()


def migrate(connection: sqlite3.Connection) -> int:
    """Applies the steps the database has not seen; returns the version it is now at."""
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise SchemaError(f"the database is at schema version {version}, newer than this "
                          f"gemgate knows ({len(MIGRATIONS)}); upgrade gemgate")
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # executescript would commit first; run the statements one by one inside ours.
            for statement in _statements(step):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={number}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Splits a migration into statements (sqlite3.complete_statement knows where each ends,
    triggers' inner semicolons included)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [s for s in statements if s.rstrip(";").strip()]
