"""`gemgate store migrate --to postgresql://…`: a SQLite store copied into PostgreSQL, exactly.

Every table is copied as it is (binary COPY, fast), the rollup included — it may hold periods
whose request rows retention already pruned, so it is copied rather than recomputed. The target
schema must hold no ledger yet: copying twice would count twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from gemgate.storage.postgres.schema import ensure_partition, migrate, month_of, next_month
from gemgate.storage.sqlite import export


class TargetNotEmpty(Exception):
    pass


async def copy_into(source: str | Path, dsn: str, schema: str) -> dict[str, Any]:
    """Copies the SQLite store at `source` into `schema`; returns the target's totals."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate(connection, schema)
        held = await connection.fetchval(
            f"SELECT (SELECT count(*) FROM {schema}.requests) + "
            f"(SELECT count(*) FROM {schema}.usage_rollup) + "
            f"(SELECT count(*) FROM {schema}.vkeys)")
        if held:
            raise TargetNotEmpty(f"schema {schema!r} already holds a ledger or keys: migrate "
                                 "into an empty one (copying twice would count twice)")
        span = export.ts_span(source)
        async with connection.transaction():
            if span is not None:
                month = month_of(span[0])
                while month.timestamp() <= span[1]:
                    await ensure_partition(connection, schema, month.timestamp())
                    month = next_month(month)
            for table, columns in export.TABLES.items():
                for batch in export.rows(source, table):
                    await connection.copy_records_to_table(
                        table, records=batch, columns=list(columns), schema_name=schema)
            await connection.execute(f"SELECT setval('{schema}.keys_version', "
                                     f"(SELECT count(*) + 1 FROM {schema}.vkeys))")
        return await totals(connection, schema)
    finally:
        await connection.close()


async def totals(connection: asyncpg.Connection, schema: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for table in export.TABLES:
        found[table] = await connection.fetchval(f"SELECT count(*) FROM {schema}.{table}")
    row = await connection.fetchrow(
        f"SELECT coalesce(sum(cost_usd), 0) AS c, coalesce(sum(total_tokens), 0) AS t "
        f"FROM {schema}.requests")
    found["requests_cost_usd"], found["requests_tokens"] = row["c"], row["t"]
    row = await connection.fetchrow(
        f"SELECT coalesce(sum(cost_usd), 0) AS c, coalesce(sum(requests), 0) AS r "
        f"FROM {schema}.usage_rollup")
    found["rollup_cost_usd"], found["rollup_requests"] = row["c"], row["r"]
    return found
