"""The PostgreSQL store: migrations, reports equal to SQLite's, a virtual key change seen by
every replica within a second, and `gemgate store migrate` copying a SQLite store exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests

from gemgate.simulator import run_simulator
from gemgate.storage.postgres.schema import MIGRATIONS, SchemaError, migrate
from tests.conftest import run_gateway
from tests.shared_backends import PG_DSN, pg_schema, pg_store

PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
HI = {"contents": [{"parts": [{"text": "hi"}]}]}


def _run(work: Any) -> Any:
    async def go() -> Any:
        connection = await asyncpg.connect(PG_DSN)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(go())


def test_migrations_run_once_and_a_newer_schema_is_refused() -> None:
    with pg_schema() as schema:
        assert _run(lambda c: migrate(c, schema)) == len(MIGRATIONS)
        assert _run(lambda c: migrate(c, schema)) == len(MIGRATIONS)  # again: nothing to do
        versions = _run(lambda c: c.fetch(f"SELECT version FROM {schema}.gemgate_schema"))
        assert [row["version"] for row in versions] == list(range(1, len(MIGRATIONS) + 1))
        _run(lambda c: c.execute(f"INSERT INTO {schema}.gemgate_schema VALUES (999)"))
        with pytest.raises(SchemaError, match="newer than this gemgate knows"):
            _run(lambda c: migrate(c, schema))


def _traffic(gateway: Any) -> str:
    """Some requests by a virtual key and by a configured token; returns the key's secret."""
    secret, _ = gateway.new_key(daily_budget_usd=5)
    for token in (secret, "gg-test-token-0001"):
        for _ in range(3):
            answer = requests.post(gateway.url + GENERATE, json=HI, timeout=10,
                                   headers={"x-goog-api-key": token})
            assert answer.status_code == 200
    return secret


def _report(gateway: Any, by: str) -> dict[str, Any]:
    answer = gateway.admin("GET", f"/admin/usage?by={by}&since=1d")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_reports_on_postgres_equal_reports_on_sqlite(tmp_path: Path) -> None:
    with pg_schema() as schema, run_simulator() as sim, \
            run_gateway(sim.url, PAID) as lite, \
            run_gateway(sim.url, PAID, store=pg_store(schema, str(tmp_path / "s.db"))) as pg:
        _traffic(lite)
        _traffic(pg)
        for by in ("tenant", "model", "project", "day"):
            assert _report(lite, by)["totals"] == _report(pg, by)["totals"]
            assert len(_report(lite, by)["rows"]) == len(_report(pg, by)["rows"])


def test_a_key_revoked_on_one_replica_is_refused_on_the_other_within_a_second(
        tmp_path: Path) -> None:
    with pg_schema() as schema, run_simulator() as sim, \
            run_gateway(sim.url, PAID, store=pg_store(schema, str(tmp_path / "1.db"))) as one, \
            run_gateway(sim.url, PAID, store=pg_store(schema, str(tmp_path / "2.db"))) as two:
        secret, key = one.new_key()
        deadline = time.monotonic() + 1.5
        while requests.post(two.url + GENERATE, json=HI, timeout=10,
                            headers={"x-goog-api-key": secret}).status_code != 200:
            assert time.monotonic() < deadline, "the other replica never saw the new key"
            time.sleep(0.05)
        assert one.admin("DELETE", f"/admin/vkeys/{key['id']}").status_code == 200
        revoked = time.monotonic()
        while requests.post(two.url + GENERATE, json=HI, timeout=10,
                            headers={"x-goog-api-key": secret}).status_code != 401:
            assert time.monotonic() - revoked < 1.5, "still accepted after a second"
            time.sleep(0.05)


def test_store_migrate_copies_a_sqlite_store_exactly(tmp_path: Path) -> None:
    with run_simulator() as sim, run_gateway(sim.url, PAID) as gateway:
        secret = _traffic(gateway)
        db = gateway.db_path
        expected = _report(gateway, "key")["totals"]
    with pg_schema() as schema:
        command = [sys.executable, "-m", "gemgate", "store", "migrate", "--to", PG_DSN,
                   "--schema", schema, "--db", db]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "GEMINI_API_KEYS": ""})
        assert done.returncode == 0, done.stderr
        assert "exact." in done.stdout and "DIFFERENT" not in done.stdout
        again = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "copying twice" in again.stderr
        # The gateway on PostgreSQL serves the migrated key and reports the same usage.
        with run_simulator() as sim, run_gateway(
                sim.url, PAID, store=pg_store(schema, str(tmp_path / "s.db"))) as gateway:
            assert _report(gateway, "key")["totals"] == expected
            answer = requests.post(gateway.url + GENERATE, json=HI, timeout=10,
                                   headers={"x-goog-api-key": secret})
            assert answer.status_code == 200
