"""Usage reports: requests, tokens and cost grouped by tenant, key, model, project, provider or
day over a time range — for `gemgate usage` and `/admin/usage`.

Whole 15-minute buckets are read from the rollup table the writer keeps (a few thousand rows
for a week, however many requests it held); only the partial buckets at the two ends of the
range are summed from the request rows themselves, through the index on `ts`. So a report is
exact to the second and fast over millions of records.
"""

from __future__ import annotations

import math
import sqlite3
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gemgate.ledger.report import (
    GROUPS,
    MEASURES,
    Report,
    ReportError,
    parse_when,
    to_csv,
    to_table,
)
from gemgate.storage.sqlite.schema import ROLLUP_BUCKET_S

__all__ = ["GROUPS", "MEASURES", "Report", "ReportError", "parse_when", "to_csv", "to_table",
           "usage_report"]

_ROLLUP_COLUMN = {"tenant": "tenant", "key": "vkey_id", "model": "model", "project": "project",
                  "provider": "provider", "day": "bucket"}
_RAW_COLUMN = {"tenant": "tenant", "key": "COALESCE(vkey_id, '')",
               "model": "COALESCE(model_used, model_asked, '')",
               "project": "COALESCE(project, '')", "provider": "provider",
               "day": f"CAST(ts / {ROLLUP_BUCKET_S} AS INTEGER) * {ROLLUP_BUCKET_S}"}
_ROLLUP_SUMS = ", ".join(f"SUM({m})" for m in MEASURES)
_RAW_SUMS = ("COUNT(*), SUM(status >= 400 AND cancelled = 0), SUM(prompt_tokens), "
             "SUM(candidates_tokens), SUM(thoughts_tokens), SUM(cached_tokens), "
             "SUM(total_tokens), SUM(cost_usd)")
_FILTERS = ("tenant", "key", "model", "project", "provider")


def usage_report(db: sqlite3.Connection, by: str, since: float, until: float | None = None,
                 timezone: str = "UTC", **filters: str | None) -> Report:
    if by not in GROUPS:
        raise ReportError(f"cannot group by {by!r}: use one of {', '.join(GROUPS)}")
    until = time.time() if until is None else until
    if until <= since:
        raise ReportError("the end of the range must come after its start")
    where, args = _filters(filters)
    sums: dict[Any, list[float]] = {}
    first = math.ceil(since / ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S  # whole buckets: [first, last)
    last = math.floor(until / ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S
    if first < last:
        _add(sums, db.execute(
            f"SELECT {_ROLLUP_COLUMN[by]}, {_ROLLUP_SUMS} FROM usage_rollup "
            f"WHERE bucket >= ? AND bucket < ?{where['rollup']} GROUP BY 1",
            (first, last, *args)))
        edges = [(since, first), (last, until)]
    else:
        edges = [(since, until)]
    for start, end in edges:
        if start < end:
            _add(sums, db.execute(
                f"SELECT {_RAW_COLUMN[by]}, {_RAW_SUMS} FROM requests "
                f"WHERE ts >= ? AND ts < ?{where['raw']} GROUP BY 1", (start, end, *args)))
    if by == "day":
        sums = _by_local_day(sums, ZoneInfo(timezone))
    rows = [{by: group, **_measures(values)} for group, values in sums.items()]
    if by == "key":
        names = dict(db.execute("SELECT id, name FROM vkeys"))
        for row in rows:
            row["name"] = names.get(row["key"], "") if row["key"] else "(configured tokens)"
    rows.sort(key=(lambda r: r["day"]) if by == "day" else (lambda r: (-r["cost_usd"],
                                                                       -r["requests"])))
    totals = _measures([sum(r[m] for r in rows) for m in MEASURES])
    return Report(by, since, until, rows, totals, timezone)


def _filters(filters: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    rollup, raw, args = "", "", []
    for name, value in filters.items():
        if name not in _FILTERS:
            raise ReportError(f"unknown filter {name!r}")
        if value:
            rollup += f" AND {_ROLLUP_COLUMN[name]} = ?"
            raw += f" AND {_RAW_COLUMN[name]} = ?"
            args.append(value)
    return {"rollup": rollup, "raw": raw}, args


def _add(sums: dict[Any, list[float]], rows: sqlite3.Cursor) -> None:
    for group, *values in rows:
        total = sums.setdefault(group, [0.0] * len(MEASURES))
        for i, value in enumerate(values):
            total[i] += value or 0


def _by_local_day(sums: dict[Any, list[float]], zone: ZoneInfo) -> dict[Any, list[float]]:
    days: dict[Any, list[float]] = {}
    for bucket, values in sums.items():
        day = datetime.fromtimestamp(bucket, zone).date().isoformat()
        total = days.setdefault(day, [0.0] * len(MEASURES))
        for i, value in enumerate(values):
            total[i] += value
    return days


def _measures(values: list[float]) -> dict[str, Any]:
    row: dict[str, Any] = {m: int(v) for m, v in zip(MEASURES[:-1], values, strict=False)}
    row["cost_usd"] = round(float(values[-1]), 9)
    return row


