"""Virtual keys and resource owners in PostgreSQL (the same rules as storage/sqlite/keys.py).

Every change to a key moves the `keys_version` sequence; each replica polls it (every
`ledger.key_refresh_s`, 1 s by default), so a change made on one is in force on all within a
second."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from gemgate.access.store import KeyConflict, KeyNotFound, spec_json, validate_spec
from gemgate.access.vkeys import KeySpec, VirtualKey, digest_of, mask_of, new_secret

_COLUMNS = "id, name, digest, mask, spec, created_at, updated_at, revoked_at"


def _key(row: asyncpg.Record) -> VirtualKey:
    return VirtualKey.build(row["id"], KeySpec.model_validate_json(row["spec"]), row["digest"],
                            row["mask"], row["created_at"], row["updated_at"],
                            row["revoked_at"])


class PgKeys:
    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str) -> None:
        self._pool, self.s = pool, schema

    async def _changed(self, connection: asyncpg.Connection) -> None:
        await connection.execute(f"SELECT nextval('{self.s}.keys_version')")

    async def version(self) -> int:
        row = await self._pool().fetchrow(
            f"SELECT last_value, is_called FROM {self.s}.keys_version")
        return int(row["last_value"]) if row["is_called"] else 0

    async def all(self, include_revoked: bool = True) -> list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = await self._pool().fetch(
            f"SELECT {_COLUMNS} FROM {self.s}.vkeys{where} ORDER BY created_at")
        return [_key(row) for row in rows]

    async def get(self, ref: str) -> VirtualKey:
        pool = self._pool()
        row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM {self.s}.vkeys WHERE id = $1", ref)
        if row is None:
            row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM {self.s}.vkeys WHERE name = $1 "
                                      "AND revoked_at IS NULL", ref)
        if row is None:
            raise KeyNotFound(f"no virtual key with id or name {ref!r}")
        return _key(row)

    async def create(self, data: dict[str, Any]) -> tuple[VirtualKey, str]:
        spec = validate_spec(data)
        secret, now = new_secret(), time.time()
        key_id = "vk_" + os.urandom(6).hex()
        async with self._pool().acquire() as connection, connection.transaction():
            try:
                await connection.execute(
                    f"INSERT INTO {self.s}.vkeys ({_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                    key_id, spec.name, digest_of(secret), mask_of(secret), spec_json(spec),
                    now, now)
            except asyncpg.UniqueViolationError:
                raise KeyConflict(f"an active key is already named {spec.name!r}") from None
            await self._changed(connection)
        return await self.get(key_id), secret

    async def update(self, ref: str, patch: dict[str, Any]) -> VirtualKey:
        key = await self._active(ref)
        spec = validate_spec({**key.spec.model_dump(), **patch})
        async with self._pool().acquire() as connection, connection.transaction():
            try:
                await connection.execute(
                    f"UPDATE {self.s}.vkeys SET name = $1, spec = $2, updated_at = $3 "
                    "WHERE id = $4", spec.name, spec_json(spec), time.time(), key.id)
            except asyncpg.UniqueViolationError:
                raise KeyConflict(f"an active key is already named {spec.name!r}") from None
            await self._changed(connection)
        return await self.get(key.id)

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]:
        key = await self._active(ref)
        secret = new_secret()
        async with self._pool().acquire() as connection, connection.transaction():
            await connection.execute(
                f"UPDATE {self.s}.vkeys SET digest = $1, mask = $2, updated_at = $3 "
                "WHERE id = $4", digest_of(secret), mask_of(secret), time.time(), key.id)
            await self._changed(connection)
        return await self.get(key.id), secret

    async def revoke(self, ref: str) -> VirtualKey:
        key = await self._active(ref)
        now = time.time()
        async with self._pool().acquire() as connection, connection.transaction():
            await connection.execute(
                f"UPDATE {self.s}.vkeys SET revoked_at = $1, updated_at = $1 WHERE id = $2",
                now, key.id)
            await self._changed(connection)
        return await self.get(key.id)

    async def spent(self, key_id: str, start: float, end: float) -> float:
        value = await self._pool().fetchval(
            f"SELECT coalesce(sum(cost_usd), 0) FROM {self.s}.usage_rollup "
            "WHERE vkey_id = $1 AND bucket >= $2 AND bucket < $3", key_id, start, end)
        return float(value)

    async def _active(self, ref: str) -> VirtualKey:
        try:
            key = await self.get(ref)
        except KeyNotFound:
            row = await self._pool().fetchrow(
                f"SELECT {_COLUMNS} FROM {self.s}.vkeys WHERE name = $1 "
                "ORDER BY revoked_at DESC NULLS LAST LIMIT 1", ref)
            if row is None:
                raise
            key = _key(row)
        if key.revoked_at is not None:
            raise KeyConflict(f"key {key.id} ({key.name}) is already revoked; create a new one")
        return key


class PgOwners:
    """Who owns each resource created through gemgate, shared by every replica."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], schema: str) -> None:
        self._pool, self.s = pool, schema

    async def load(self) -> list[tuple[str, str, str]]:
        rows = await self._pool().fetch(f"SELECT name, tenant, project FROM {self.s}.resources")
        return [(row["name"], row["tenant"], row["project"]) for row in rows]

    async def find(self, names: list[str]) -> list[tuple[str, str, str]]:
        rows = await self._pool().fetch(
            f"SELECT name, tenant, project FROM {self.s}.resources WHERE name = any($1)", names)
        return [(row["name"], row["tenant"], row["project"]) for row in rows]

    async def save(self, name: str, tenant: str, project: str) -> None:
        await self._pool().execute(f"INSERT INTO {self.s}.resources VALUES ($1, $2, $3, $4) "
                                   "ON CONFLICT DO NOTHING", name, tenant, project, time.time())

    async def delete(self, name: str) -> None:
        await self._pool().execute(f"DELETE FROM {self.s}.resources WHERE name = $1", name)
