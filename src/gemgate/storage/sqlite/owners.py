"""Resource ownership kept in the ledger's database, written through the ledger's one writer."""

from __future__ import annotations

import sqlite3
import time

from gemgate.storage.sqlite.ledger import Ledger


class LedgerOwnerStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def load(self) -> list[tuple[str, str, str]]:
        def read(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
            return list(db.execute("SELECT name, tenant, project FROM resources"))

        return await self.ledger.run(read)

    async def find(self, names: list[str]) -> list[tuple[str, str, str]]:
        def read(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
            marks = ", ".join("?" for _ in names)
            return list(db.execute(f"SELECT name, tenant, project FROM resources "
                                   f"WHERE name IN ({marks})", names))

        return await self.ledger.run(read)

    async def save(self, name: str, tenant: str, project: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR IGNORE INTO resources VALUES (?, ?, ?, ?)",
                       (name, tenant, project, time.time()))

        await self.ledger.run(write)

    async def delete(self, name: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM resources WHERE name = ?", (name,))

        await self.ledger.run(write)
