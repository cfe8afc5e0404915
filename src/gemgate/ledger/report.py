"""Usage reports as any storage backend returns them: what can be asked (group by, time
range), the answer (`Report`), and how it is shown (table, CSV, JSON). Backends compute them
(storage/sqlite/reports.py)."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

GroupBy = Literal["tenant", "key", "model", "project", "provider", "day"]
GROUPS: tuple[str, ...] = ("tenant", "key", "model", "project", "provider", "day")
MEASURES = ("requests", "errors", "cache_hits", "prompt_tokens", "candidates_tokens",
            "thoughts_tokens", "cached_tokens", "total_tokens", "saved_usd", "cost_usd")

# The column each grouping reads, in the rollup and in the request rows.
class ReportError(ValueError):
    pass


def parse_when(text: str, now: float | None = None) -> float:
    """`7d`, `12h`, `30m` (that long ago), `today`, or a date/time (ISO 8601; UTC unless it
    names a zone) → unix seconds."""
    now = time.time() if now is None else now
    text = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return now - float(match.group(1)) * unit
    if text == "now":
        return now
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"cannot read {text!r} as a time: use 7d, 12h, 30m or a date such as "
                          "2026-11-01") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo("UTC"))
    return when.timestamp()


@dataclass(frozen=True)
class Report:
    by: str
    since: float
    until: float
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    timezone: str = "UTC"  # of the period shown and of days when grouped by day

    @property
    def hit_rate(self) -> float | None:
        """The share of requests the response cache answered."""
        requests = self.totals.get("requests") or 0
        return round(self.totals.get("cache_hits", 0) / requests, 4) if requests else None

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.by, "since": _iso(self.since), "until": _iso(self.until),
                "rows": self.rows, "totals": self.totals, "cache_hit_rate": self.hit_rate}


def _iso(ts: float, zone: str = "UTC") -> str:
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).isoformat(timespec="seconds")


# ---- output -----------------------------------------------------------------------------

def _columns(report: Report) -> list[str]:
    first = [report.by, "name"] if report.by == "key" else [report.by]
    return [*first, *MEASURES]


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_columns(report))
    for row in report.rows:
        writer.writerow([row[c] for c in _columns(report)])
    return out.getvalue()


def to_table(report: Report) -> str:
    """A plain-text table with a total line, sized to its content."""
    columns = _columns(report)
    headings = {"prompt_tokens": "prompt", "candidates_tokens": "output",
                "thoughts_tokens": "thinking", "cached_tokens": "cached",
                "total_tokens": "total", "cache_hits": "cache hits",
                "saved_usd": "saved (USD)", "cost_usd": "cost (USD)"}
    lines = [[headings.get(c, c) for c in columns]]
    for row in [*report.rows, {columns[0]: "TOTAL", **report.totals}]:
        lines.append([_cell(row.get(c, "")) for c in columns])
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    text_columns = 2 if report.by == "key" else 1
    rendered = []
    for n, line in enumerate(lines):
        cells = [cell.ljust(w) if i < text_columns else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(line, widths, strict=True))]
        rendered.append("  ".join(cells).rstrip())
        if n == 0 or n == len(lines) - 2:
            rendered.append("  ".join("-" * w for w in widths))
    zone = report.timezone
    period = f"{_iso(report.since, zone)} .. {_iso(report.until, zone)} ({zone})"
    cache = ""
    if report.totals.get("cache_hits"):
        cache = (f"\ncache: {report.totals['cache_hits']:,} of {report.totals['requests']:,} "
                 f"requests answered from the cache ({(report.hit_rate or 0) * 100:.1f}%), "
                 f"{report.totals['saved_usd']:.6f} USD saved")
    return f"usage by {report.by}, {period}\n" + "\n".join(rendered) + cache


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value) if value != "" else "-"
