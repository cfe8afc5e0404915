"""What the guardrails found over a time range, read back from the ledger's `guarded` column
(`PHONE 2 restore; deny:codename block`): counts per detector and action, per rule and action,
and per tenant — for `GET /admin/guardrails`. Never a value: the column holds none."""

from __future__ import annotations

from collections import Counter
from typing import Any


def guarded_sql(schema: str = "") -> str:
    return (f"SELECT tenant, guarded FROM {schema}requests "
            "WHERE ts >= ? AND guarded IS NOT NULL")


def summarize(rows: list[tuple[str, str]]) -> dict[str, Any]:
    detectors: Counter[tuple[str, str]] = Counter()
    rules: Counter[tuple[str, str]] = Counter()
    tenants: Counter[str] = Counter()
    for tenant, guarded in rows:
        for item in guarded.split("; "):
            words = item.split(" ")
            if len(words) == 3 and words[1].isdigit():  # KIND COUNT ACTION
                detectors[(words[0], words[2])] += int(words[1])
                tenants[tenant] += int(words[1])
            elif len(words) == 2:  # rule ACTION
                rules[(words[0], words[1])] += 1
    return {"requests": len(rows),
            "detectors": [{"detector": d, "action": a, "count": n}
                          for (d, a), n in detectors.most_common()],
            "rules": [{"rule": r, "action": a, "count": n} for (r, a), n in rules.most_common()],
            "by_tenant": dict(tenants.most_common())}
