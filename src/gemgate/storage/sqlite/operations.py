"""The operator's records in the ledger's database: upstream keys changed at run time and the
audit log — written through the ledger's one writer."""

from __future__ import annotations

import sqlite3

from gemgate.audit import AuditEntry
from gemgate.storage.sqlite.ledger import Ledger
from gemgate.upstream.keyring import KeyRow


class SqliteKeyring:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def rows(self) -> list[KeyRow]:
        def read(db: sqlite3.Connection) -> list[KeyRow]:
            found = db.execute("SELECT key_id, project, tier, tag, secret, held, removed, "
                               "changed_at FROM upstream_keys ORDER BY changed_at")
            return [KeyRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), r[7])
                    for r in found]

        return await self.ledger.run(read)

    async def save(self, row: KeyRow) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO upstream_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.key_id, row.project, row.tier, row.tag, row.secret, int(row.held),
                        int(row.removed), row.changed_at))

        await self.ledger.run(write)


class SqliteAudit:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def write(self, entry: AuditEntry) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO audit_log (ts, actor, action, target, detail) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (entry.ts, entry.actor, entry.action, entry.target, entry.detail))

        await self.ledger.run(write)

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        def read(db: sqlite3.Connection) -> list[AuditEntry]:
            found = db.execute("SELECT ts, actor, action, target, detail FROM audit_log "
                               "ORDER BY id DESC LIMIT ?", (limit,))
            return [AuditEntry(*row) for row in found]

        return await self.ledger.run(read)
