"""The PostgreSQL schema, migrated by numbered steps on start.

`gemgate_schema` holds the number of the last step applied; each step runs in its own
transaction under an advisory lock (replicas starting together migrate once). A database
migrated by a newer gemgate is refused, never written by an older one. Steps are only ever
appended.

Request rows are partitioned by month (`ts`, unix seconds): retention drops whole partitions
(instant, no vacuum debt) instead of deleting rows. The unique key is (request_id, ts) — a
partitioned table's unique keys must hold its partition key — and a record always carries the
same ts, so a replayed record is still recognised and never doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from gemgate.storage.report_sql import ROLLUP_BUCKET_S

__all__ = ["ROLLUP_BUCKET_S", "SchemaError", "migrate"]

_LOCK = 0x67656D67  # "gemg": the advisory lock that serialises migrations


class SchemaError(Exception):
    pass


MIGRATIONS: list[str] = [
    # 1: the ledger (partitioned by month), its 15-minute rollup, virtual keys, owners.
    """
    CREATE TABLE requests (
        ts DOUBLE PRECISION NOT NULL,
        request_id TEXT NOT NULL,
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
        prompt_tokens BIGINT NOT NULL,
        candidates_tokens BIGINT NOT NULL,
        thoughts_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        tool_tokens BIGINT NOT NULL,
        total_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        stream BOOLEAN NOT NULL,
        cancelled BOOLEAN NOT NULL,
        attempts INTEGER NOT NULL,
        attempt_log TEXT,
        priority TEXT,
        client_ip TEXT,
        PRIMARY KEY (request_id, ts)
    ) PARTITION BY RANGE (ts);
    CREATE INDEX requests_ts ON requests (ts);
    CREATE TABLE usage_rollup (
        bucket BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        vkey_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        project TEXT NOT NULL,
        model TEXT NOT NULL,
        requests BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        candidates_tokens BIGINT NOT NULL,
        thoughts_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        total_tokens BIGINT NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (bucket, tenant, vkey_id, provider, project, model)
    );
    CREATE INDEX usage_rollup_vkey ON usage_rollup (vkey_id, bucket);
    CREATE TABLE vkeys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        mask TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    CREATE UNIQUE INDEX vkeys_active_name ON vkeys (name) WHERE revoked_at IS NULL;
    CREATE SEQUENCE keys_version;
    CREATE TABLE resources (
        name TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        project TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: the response cache: which requests it answered, and what that saved.
    """
    ALTER TABLE requests ADD COLUMN cache TEXT;
    ALTER TABLE requests ADD COLUMN saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE usage_rollup ADD COLUMN cache_hits BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_rollup ADD COLUMN saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    """,
    # 3: the operator's changes to the upstream pool, the audit log, search by tenant.
    """
    CREATE TABLE upstream_keys (
        key_id TEXT PRIMARY KEY,
        project TEXT NOT NULL,
        tier TEXT NOT NULL,
        tag TEXT NOT NULL,
        secret TEXT,
        held BOOLEAN NOT NULL,
        removed BOOLEAN NOT NULL,
        changed_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX requests_tenant_ts ON requests (tenant, ts);
    CREATE INDEX requests_failed_ts ON requests (ts) WHERE status >= 400;
    CREATE TABLE metered (
        name TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL
    );
    """,
    # 4: tokens by modality (a Live session's audio and text), where any was not text.
    """
    ALTER TABLE requests ADD COLUMN modalities TEXT;
    """,
    # 5: what the guardrails found and did (counts per detector and rule, never a value).
    """
    ALTER TABLE requests ADD COLUMN guarded TEXT;
    """,
]


async def migrate(connection: asyncpg.Connection, schema: str) -> int:
    """Brings `schema` up to the latest step; returns the version it is at."""
    async with connection.transaction():
        await connection.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await connection.execute(f"CREATE TABLE IF NOT EXISTS {schema}.gemgate_schema "
                                 "(version INTEGER NOT NULL)")
        version = await connection.fetchval(f"SELECT max(version) FROM {schema}.gemgate_schema")
    version = version or 0
    if version > len(MIGRATIONS):
        raise SchemaError(f"the database schema {schema!r} is at version {version}, newer than "
                          f"this gemgate knows ({len(MIGRATIONS)}): upgrade gemgate")
    for number in range(version + 1, len(MIGRATIONS) + 1):
        async with connection.transaction():
            await connection.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
            done = await connection.fetchval(
                f"SELECT coalesce(max(version), 0) FROM {schema}.gemgate_schema")
            if done >= number:
                continue  # another replica got there first
            await connection.execute(f"SET LOCAL search_path TO {schema}")
            await connection.execute(MIGRATIONS[number - 1])
            await connection.execute(f"INSERT INTO {schema}.gemgate_schema VALUES ($1)", number)
    return len(MIGRATIONS)


def month_of(ts: float) -> datetime:
    when = datetime.fromtimestamp(ts, UTC)
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else \
        start.replace(month=start.month + 1)


async def ensure_partition(connection: asyncpg.Connection, schema: str, ts: float) -> str:
    """The month partition that holds `ts`, created if missing."""
    start = month_of(ts)
    end = next_month(start)
    name = f"requests_{start:%Y_%m}"
    await connection.execute(
        f"CREATE TABLE IF NOT EXISTS {schema}.{name} PARTITION OF {schema}.requests "
        f"FOR VALUES FROM ({start.timestamp()}) TO ({end.timestamp()})")
    return name


async def drop_partitions_before(connection: asyncpg.Connection, schema: str,
                                 older_than: float) -> list[str]:
    """Retention: drops every month partition that ends before `older_than`."""
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = 'requests' AND n.nspname = $1", schema)
    dropped = []
    for row in rows:
        name = row["relname"]
        try:
            start = datetime.strptime(name, "requests_%Y_%m").replace(tzinfo=UTC)
        except ValueError:
            continue
        if next_month(start).timestamp() <= older_than:
            await connection.execute(f"DROP TABLE {schema}.{name}")
            dropped.append(name)
    return dropped
