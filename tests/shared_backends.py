"""Real Redis and PostgreSQL for the scale-out tests (127.0.0.1:6379 and :5432, database
`test`; `.ci/run` starts them). Each test gets its own Redis key prefix and its own PostgreSQL
schema, so tests never see each other's state. A missing server fails the test, never skips it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def require_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is needed at {REDIS_URL} ({exc}); `bash .ci/run` starts it")
    return client


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    client = require_redis()
    prefix = f"gg-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


@contextmanager
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this test's own, dropped afterwards."""
    import asyncio

    schema = f"t_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        try:
            connection = await asyncpg.connect(PG_DSN, timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(f"PostgreSQL is needed at {PG_DSN} ({exc}); `bash .ci/run` starts it")
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        asyncio.run(run(f"DROP SCHEMA {schema} CASCADE"))


def redis_state(prefix: str, **extra: object) -> dict[str, object]:
    return {"backend": "redis", "url": REDIS_URL, "prefix": prefix, **extra}


def pg_store(schema: str, spool: str, **extra: object) -> dict[str, object]:
    return {"backend": "postgres", "dsn": PG_DSN, "schema": schema, "spool_path": spool,
            **extra}
