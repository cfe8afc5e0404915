"""Real Redis and PostgreSQL for the scale-out tests (127.0.0.1:6379 and :5432, database
`test`; `.ci/run` starts them). Each test gets its own Redis key prefix and its own PostgreSQL
schema, so tests never see each other's state. A missing server fails the test, never skips it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def _pg_bin(name: str) -> str:
    import glob

    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} is needed (apt-get install postgresql)")
    return found[-1]


@contextmanager
def private_postgres() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL cluster of this test's own (the test stops and starts it), on a free port;
    run as the `postgres` user when the tests run as root (initdb refuses root)."""
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="gemgate-pg-")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = f"{folder}/data"
    subprocess.run([*as_postgres, _pg_bin("initdb"), "-D", data, "-A", "trust", "-U",
                    "postgres", "--no-sync", "-E", "UTF8"], check=True, capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"

    class Control:
        def start(self) -> None:
            subprocess.run([*as_postgres, _pg_bin("pg_ctl"), "-D", data, "-o", options, "-l",
                            f"{folder}/log", "-w", "start"], check=True, capture_output=True)

        def stop(self) -> None:
            subprocess.run([*as_postgres, _pg_bin("pg_ctl"), "-D", data, "-m", "fast", "-w",
                            "stop"], check=True, capture_output=True)

    control = Control()
    control.start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", control
    finally:
        subprocess.run([*as_postgres, _pg_bin("pg_ctl"), "-D", data, "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
