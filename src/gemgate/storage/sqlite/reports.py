"""Usage reports from the SQLite file (the SQL and its assembly: storage/report_sql.py)."""

from __future__ import annotations

import sqlite3

from gemgate.ledger.report import (
    GROUPS,
    MEASURES,
    Report,
    ReportError,
    parse_when,
    to_csv,
    to_table,
)
from gemgate.storage import report_sql

__all__ = ["GROUPS", "MEASURES", "Report", "ReportError", "parse_when", "to_csv", "to_table",
           "usage_report"]


def usage_report(db: sqlite3.Connection, by: str, since: float, until: float | None = None,
                 timezone: str = "UTC", **filters: str | None) -> Report:
    plan = report_sql.plan(report_sql.SQLITE, by, since, until, **filters)
    results = [list(db.execute(sql, args)) for sql, args in plan.queries]
    names = dict(db.execute(plan.names_query)) if plan.names_query else None
    return report_sql.assemble(plan, results, timezone, names)
