"""Finding recent requests in the ledger (the console's Requests page, `/admin/requests`): by
request id, tenant, status and problem, newest first, a page at a time. The SQL is the same for
both backends (`?` placeholders; PostgreSQL's store numbers them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COLUMNS = ("ts", "request_id", "tenant", "vkey_id", "model_asked", "model_used", "project",
           "key_mask", "status", "problem", "prompt_tokens", "candidates_tokens",
           "total_tokens", "cost_usd", "latency_ms", "stream", "cancelled", "attempts",
           "attempt_log", "cache", "modalities", "guarded")
PAGE_MAX = 200


class SearchError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RequestQuery:
    request_id: str | None = None
    tenant: str | None = None
    status: str | None = None  # "429", "4xx", "5xx" or "errors"
    problem: str | None = None
    since: float | None = None
    limit: int = 50
    offset: int = 0

    @classmethod
    def of(cls, query: dict[str, str], since: float | None) -> RequestQuery:
        """From a query string: `id`, `tenant`, `status`, `problem`, `page`, `limit`."""
        try:
            limit = min(PAGE_MAX, max(1, int(query.get("limit") or 50)))
            page = max(1, int(query.get("page") or 1))
        except ValueError:
            raise SearchError("page and limit are whole numbers") from None
        status = (query.get("status") or "").strip().lower() or None
        if status and not (status.isdigit() or status in ("4xx", "5xx", "errors")):
            raise SearchError("status is a number, 4xx, 5xx or errors")
        return cls((query.get("id") or "").strip() or None,
                   (query.get("tenant") or "").strip() or None, status,
                   (query.get("problem") or "").strip().upper() or None, since, limit,
                   (page - 1) * limit)

    def sql(self, schema: str = "") -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if self.request_id:
            where.append("request_id = ?")
            args.append(self.request_id)
        elif self.since is not None:  # an id finds its request whenever it was
            where.append("ts >= ?")
            args.append(self.since)
        if self.tenant:
            where.append("tenant = ?")
            args.append(self.tenant)
        if self.problem:
            where.append("problem = ?")
            args.append(self.problem)
        # Failures are found through the partial index on failed requests' times: its own
        # condition is spelt out (`status >= 400`), for the planner to see it applies.
        if self.status == "errors":
            where.append("status >= 400")
        elif self.status in ("4xx", "5xx"):
            low = int(self.status[0]) * 100
            where.append(f"status >= 400 AND status >= {low} AND status < {low + 100}")
        elif self.status and int(self.status) >= 400:
            where.append(f"status >= 400 AND status = {int(self.status)}")
        elif self.status:
            where.append("status = ?")
            args.append(int(self.status))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # One more row than the page: whether a next page exists, without a count.
        sql = (f"SELECT {', '.join(COLUMNS)} FROM {schema}requests{clause} "
               f"ORDER BY ts DESC LIMIT ? OFFSET ?")
        return sql, [*args, self.limit + 1, self.offset]


def rows_of(found: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [{name: (bool(value) if name in ("stream", "cancelled") else value)
             for name, value in zip(COLUMNS, row, strict=True)} for row in found]
