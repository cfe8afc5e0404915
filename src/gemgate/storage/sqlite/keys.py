"""Virtual keys in the database: create, list, update, rotate, revoke.

Synchronous and tied to one connection: the gateway runs these on the ledger's writer thread,
the CLI on its own connection. Every change bumps `meta.keys_version` (by trigger), which is how
a running gateway learns of changes the CLI made.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from gemgate.access.store import KeyConflict, KeyInvalid, KeyNotFound, spec_json, validate_spec
from gemgate.access.vkeys import KeySpec, VirtualKey, digest_of, mask_of, new_secret

__all__ = ["KeyConflict", "KeyInvalid", "KeyNotFound", "KeyStore", "validate_spec"]

_COLUMNS = "id, name, digest, mask, spec, created_at, updated_at, revoked_at"


def _row_to_key(row: tuple[Any, ...]) -> VirtualKey:
    id_, _name, digest, mask, spec, created, updated, revoked = row
    return VirtualKey.build(id_, KeySpec.model_validate_json(spec), digest, mask, created,
                            updated, revoked)


class KeyStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection

    def version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'keys_version'").fetchone()
        return int(row[0]) if row else 0

    def all(self, include_revoked: bool = True) -> list[VirtualKey]:
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM vkeys{where} ORDER BY created_at")
        return [_row_to_key(row) for row in rows]

    def get(self, ref: str) -> VirtualKey:
        """By id, or by name (the active key of that name)."""
        row = self.db.execute(f"SELECT {_COLUMNS} FROM vkeys WHERE id = ?", (ref,)).fetchone()
        if row is None:
            row = self.db.execute(f"SELECT {_COLUMNS} FROM vkeys WHERE name = ? "
                                  "AND revoked_at IS NULL", (ref,)).fetchone()
        if row is None:
            raise KeyNotFound(f"no virtual key with id or name {ref!r}")
        return _row_to_key(row)

    def create(self, data: dict[str, Any]) -> tuple[VirtualKey, str]:
        spec = validate_spec(data)
        secret, now = new_secret(), time.time()
        key_id = "vk_" + os.urandom(6).hex()
        try:
            self.db.execute(f"INSERT INTO vkeys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                            (key_id, spec.name, digest_of(secret), mask_of(secret),
                             spec_json(spec), now, now))
        except sqlite3.IntegrityError:
            raise KeyConflict(f"an active key is already named {spec.name!r}") from None
        return self.get(key_id), secret

    def update(self, ref: str, patch: dict[str, Any]) -> VirtualKey:
        key = self._active(ref)
        spec = validate_spec({**key.spec.model_dump(), **patch})
        try:
            self.db.execute("UPDATE vkeys SET name = ?, spec = ?, updated_at = ? WHERE id = ?",
                            (spec.name, spec_json(spec), time.time(), key.id))
        except sqlite3.IntegrityError:
            raise KeyConflict(f"an active key is already named {spec.name!r}") from None
        return self.get(key.id)

    def rotate(self, ref: str) -> tuple[VirtualKey, str]:
        """A new secret for the same key (rights, budgets and history stay); the old secret
        stops working at once."""
        key = self._active(ref)
        secret = new_secret()
        self.db.execute("UPDATE vkeys SET digest = ?, mask = ?, updated_at = ? WHERE id = ?",
                        (digest_of(secret), mask_of(secret), time.time(), key.id))
        return self.get(key.id), secret

    def spent(self, key_id: str, start: float, end: float) -> float:
        """What a key spent from `start` to `end` (whole rollup buckets: budget periods start
        on a bucket's edge), in USD."""
        row = self.db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM usage_rollup "
                              "WHERE vkey_id = ? AND bucket >= ? AND bucket < ?",
                              (key_id, start, end)).fetchone()
        return float(row[0])

    def revoke(self, ref: str) -> VirtualKey:
        """For good: a revoked key is kept (its usage stays attributed) but never works again."""
        key = self._active(ref)
        now = time.time()
        self.db.execute("UPDATE vkeys SET revoked_at = ?, updated_at = ? WHERE id = ?",
                        (now, now, key.id))
        return self.get(key.id)

    def _active(self, ref: str) -> VirtualKey:
        try:
            key = self.get(ref)
        except KeyNotFound:
            # A name whose only key is revoked: say so, not "no such key" (revoking twice).
            row = self.db.execute(f"SELECT {_COLUMNS} FROM vkeys WHERE name = ? ORDER BY "
                                  "revoked_at DESC LIMIT 1", (ref,)).fetchone()
            if row is None:
                raise
            key = _row_to_key(row)
        if key.revoked_at is not None:
            raise KeyConflict(f"key {key.id} ({key.name}) is already revoked; create a new one")
        return key
