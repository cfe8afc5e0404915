"""Usage reports in SQL, for any backend: requests, tokens and cost grouped by tenant, key,
model, project, provider or day over a time range — for `gemgate usage` and `/admin/usage`.

Whole 15-minute buckets are read from the rollup table the writer keeps (a few thousand rows
for a week, however many requests it held); only the partial buckets at the two ends of the
range are summed from the request rows themselves, through the index on `ts`. So a report is
exact to the second and fast over millions of records. The SQL differs between backends in two
expressions only (`Dialect`); each backend runs the queries and hands the rows back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gemgate.ledger.report import GROUPS, MEASURES, Report, ReportError

ROLLUP_BUCKET_S = 900  # 15 minutes: every real time zone's offset is a multiple of it
_ROLLUP_COLUMN = {"tenant": "tenant", "key": "vkey_id", "model": "model", "project": "project",
                  "provider": "provider", "day": "bucket"}
_FILTERS = ("tenant", "key", "model", "project", "provider")
_ROLLUP_SUMS = ", ".join(f"SUM({m})" for m in MEASURES)


@dataclass(frozen=True)
class Dialect:
    day: str  # a request row's rollup bucket, from its `ts`
    errors: str  # the number of failed (not cancelled) requests among a group's rows
    hits: str = "SUM(cache IN ('HIT', 'SEMANTIC-HIT'))"  # answered from the response cache
    schema: str = ""  # "name." in front of table names (PostgreSQL), or ""
    # How the edge buckets read request rows. SQLite, without statistics, would take the
    # (tenant, ts) index for a GROUP BY tenant and walk every row (1.2 s over 1M rows,
    # bench/console.py); the rows wanted are a few minutes' worth, found by `ts`.
    rows_by_time: str = "requests"

    def raw_column(self, by: str) -> str:
        return {"tenant": "tenant", "key": "COALESCE(vkey_id, '')",
                "model": "COALESCE(model_used, model_asked, '')",
                "project": "COALESCE(project, '')", "provider": "provider",
                "day": self.day}[by]


SQLITE = Dialect(day=f"CAST(ts / {ROLLUP_BUCKET_S} AS INTEGER) * {ROLLUP_BUCKET_S}",
                 errors="SUM(status >= 400 AND cancelled = 0)",
                 rows_by_time="requests INDEXED BY requests_ts")


def postgres(schema: str) -> Dialect:
    return Dialect(day=f"(floor(ts / {ROLLUP_BUCKET_S}) * {ROLLUP_BUCKET_S})::int8",
                   errors="count(*) FILTER (WHERE status >= 400 AND NOT cancelled)",
                   hits="count(*) FILTER (WHERE cache IN ('HIT', 'SEMANTIC-HIT'))",
                   schema=f"{schema}.")


@dataclass(frozen=True)
class Plan:
    """The queries one report needs (with `?` placeholders), and how to put it together."""

    by: str
    since: float
    until: float
    queries: list[tuple[str, list[Any]]]
    names_query: str | None  # key ids → names, when grouped by key


def plan(dialect: Dialect, by: str, since: float, until: float | None = None,
         **filters: str | None) -> Plan:
    if by not in GROUPS:
        raise ReportError(f"cannot group by {by!r}: use one of {', '.join(GROUPS)}")
    until = time.time() if until is None else until
    if until <= since:
        raise ReportError("the end of the range must come after its start")
    rollup_where, raw_where, args = "", "", []
    for name, value in filters.items():
        if name not in _FILTERS:
            raise ReportError(f"unknown filter {name!r}")
        if value:
            rollup_where += f" AND {_ROLLUP_COLUMN[name]} = ?"
            raw_where += f" AND {dialect.raw_column(name)} = ?"
            args.append(value)
    s = dialect.schema
    raw_sums = (f"COUNT(*), {dialect.errors}, {dialect.hits}, SUM(prompt_tokens), "
                "SUM(candidates_tokens), SUM(thoughts_tokens), SUM(cached_tokens), "
                "SUM(total_tokens), SUM(saved_usd), SUM(cost_usd)")
    queries: list[tuple[str, list[Any]]] = []
    first = math.ceil(since / ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S  # whole buckets: [first, last)
    last = math.floor(until / ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S
    if first < last:
        queries.append((f"SELECT {_ROLLUP_COLUMN[by]}, {_ROLLUP_SUMS} FROM {s}usage_rollup "
                        f"WHERE bucket >= ? AND bucket < ?{rollup_where} GROUP BY 1",
                        [first, last, *args]))
        edges = [(since, first), (last, until)]
    else:
        edges = [(since, until)]
    for start, end in edges:
        if start < end:
            queries.append((f"SELECT {dialect.raw_column(by)}, {raw_sums} "
                            f"FROM {s}{dialect.rows_by_time} "
                            f"WHERE ts >= ? AND ts < ?{raw_where} GROUP BY 1",
                            [start, end, *args]))
    names = f"SELECT id, name FROM {s}vkeys" if by == "key" else None
    return Plan(by, since, until, queries, names)


def assemble(plan: Plan, results: Iterable[Iterable[tuple[Any, ...]]], timezone: str,
             names: dict[str, str] | None = None) -> Report:
    sums: dict[Any, list[float]] = {}
    for found in results:
        for group, *values in found:
            total = sums.setdefault(group, [0.0] * len(MEASURES))
            for i, value in enumerate(values):
                total[i] += float(value or 0)
    if plan.by == "day":
        sums = _by_local_day(sums, ZoneInfo(timezone))
    rows = [{plan.by: group, **_measures(values)} for group, values in sums.items()]
    if plan.by == "key":
        for row in rows:
            row["name"] = (names or {}).get(row["key"], "") if row["key"] \
                else "(configured tokens)"
    rows.sort(key=(lambda r: r["day"]) if plan.by == "day" else (lambda r: (-r["cost_usd"],
                                                                            -r["requests"])))
    totals = _measures([sum(r[m] for r in rows) for m in MEASURES])
    return Report(plan.by, plan.since, plan.until, rows, totals, timezone)


def _by_local_day(sums: dict[Any, list[float]], zone: ZoneInfo) -> dict[Any, list[float]]:
    days: dict[Any, list[float]] = {}
    for bucket, values in sums.items():
        day = datetime.fromtimestamp(bucket, zone).date().isoformat()
        total = days.setdefault(day, [0.0] * len(MEASURES))
        for i, value in enumerate(values):
            total[i] += value
    return days


def _measures(values: list[float]) -> dict[str, Any]:
    return {m: round(float(v), 9) if m.endswith("_usd") else int(v)
            for m, v in zip(MEASURES, values, strict=True)}
