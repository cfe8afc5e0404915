"""Batch jobs' results, metered at the batch price when they are retrieved, exactly once.

Google bills a Batch API job's requests at half the interactive price, and reports their usage
only in the results: inline in the job (`GET batches/ID` once it SUCCEEDED) or in a JSONL
results file (`GET files/ID:download`). So gemgate meters a job when its results are first
read through it: the tokens of every result, priced per result (long-prompt rates apply per
request) at `BATCH_SHARE` of the interactive price, recorded on the ledger row of that read
(action `batchResults`) and charged to the key's budgets. The store claims the job's (or the
file's) name first (`LedgerStore.claim_once`): a second read, on any replica, meters nothing.

A job that wrote a results file makes that file its creator's (the file was made by Google,
not uploaded through gemgate), so the creator — and only the creator — can download it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.prices import PriceBook, Tokens, cost_of
from gemgate.upstream.affinity import ResourceOwners

BATCH_SHARE = 0.5  # Google: "50% of the standard cost"
ACTION = "batchResults"
_JOB = re.compile(r"^batches/[A-Za-z0-9_\-.]+$")
_DOWNLOAD = re.compile(r"^(files/[A-Za-z0-9_\-.]+):download$")


@dataclass(frozen=True, slots=True)
class BatchUsage:
    """A Charge (pipeline/charges.py): a job's results, at the batch price, once."""

    once: str  # what is metered once: batches/ID, or files/ID for a results file
    results: list[tuple[str, dict[str, Any]]]  # (model, usageMetadata) per answered request
    action: str = ACTION

    @property
    def model(self) -> str:
        return Counter(m for m, _ in self.results).most_common(1)[0][0] if self.results else ""

    def tokens(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for _, usage in self.results:
            for name, value in usage.items():
                if isinstance(value, int):
                    total[name] += value
        return dict(total)

    def cost(self, prices: PriceBook) -> float:
        spent = 0.0
        for model, usage in self.results:
            price = prices.price_of(model)
            if price is not None:
                spent += cost_of(price, Tokens.of(usage))
        return round(spent * BATCH_SHARE, 9)


class BatchResults:
    def __init__(self, owners: ResourceOwners) -> None:
        self.owners = owners

    async def seen(self, call: Call, answer: Answer) -> None:
        """Looks at a successful GET's answer: a finished job or a results file."""
        if call.method != "GET" or answer.status != 200 or call.tenant is None \
                or answer.stream is not None:
            return
        if _JOB.match(call.path) and b"BATCH_STATE_SUCCEEDED" in answer.body:
            await self._job(call, answer.body)
        elif (found := _DOWNLOAD.match(call.path)) is not None:
            call.charge = _results_file(found.group(1), answer.body)

    async def _job(self, call: Call, body: bytes) -> None:
        try:
            job = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        metadata = job.get("metadata") if isinstance(job, dict) else None
        output = metadata.get("output") if isinstance(metadata, dict) else None
        if not isinstance(output, dict):
            return
        model = str(metadata.get("model") or "").removeprefix("models/")  # type: ignore[union-attr]
        results_file = output.get("responsesFile")
        if isinstance(results_file, str) and call.tenant is not None and call.attempts:
            await self.owners.adopt(results_file, call.tenant.id, call.attempts[-1].project)
            return
        inline = (output.get("inlinedResponses") or {}).get("inlinedResponses")
        if isinstance(inline, list):
            call.charge = BatchUsage(call.path, [
                (model, r["response"]["usageMetadata"]) for r in inline
                if isinstance(r, dict) and isinstance(r.get("response"), dict)
                and isinstance(r["response"].get("usageMetadata"), dict)])


def _results_file(name: str, body: bytes) -> BatchUsage | None:
    """A JSONL results file: a line per request, `{"key", "response"}` or `{"key", "error"}`;
    anything else (a file that is not a batch's results) is not metered."""
    results = []
    for raw in body.splitlines():
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(line, dict) or not ({"response", "error"} & line.keys()):
            return None
        response = line.get("response")
        if isinstance(response, dict) and isinstance(response.get("usageMetadata"), dict):
            results.append((str(response.get("modelVersion") or ""),
                            response["usageMetadata"]))
    return BatchUsage(name, results) if results else None
