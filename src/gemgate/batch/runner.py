"""`gemgate batch run`: every line of the input through the gateway, at most `concurrency` at a
time, each answer kept in the journal the moment it arrives, the output written in input order.

Why it never calls an id twice: a line whose answer is in the journal is skipped on a re-run;
a line in flight when the run was stopped (Ctrl-C, a crash, `kill -9`) is sent again with the
same `Idempotency-Key` (the run's and the line's id), and a gateway that already answered it
replays that answer without calling Google (pipeline/idempotency.py). In-process runs have no
gateway left to replay after a crash: there, at most `concurrency` lines in flight at the kill
may be called again.

Priority `batch` (the default) lets the gateway's scheduler spend free quota first and admit
the run behind interactive traffic; 429s and 5xx the gateway passes on are retried here with
backoff (Retry-After honoured), so a run paced by quota ends complete, not with errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson

from gemgate.batch.journal import Journal
from gemgate.batch.lines import Line, read_lines

_RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...

    def set_postfix_str(self, text: str, refresh: bool = True) -> object: ...

    def close(self) -> object: ...


@dataclass(frozen=True)
class Plan:
    source: Path
    output: Path
    gateway: str
    token: str | None
    model: str | None = None
    concurrency: int = 8
    priority: str = "batch"
    retry_failed: bool = False
    attempts: int = 8  # per line, for answers worth retrying (429, 5xx, network)


@dataclass
class Summary:
    total: int
    done: int
    failed: int
    tokens: int
    cost_usd: float
    complete: bool


@dataclass
class Tally:
    """What the progress bar shows beside the count: failures, tokens and cost so far (a
    re-tried failure that now succeeds still counts as failed here until the run ends)."""

    failed: int
    tokens: int
    cost: float

    def add(self, ok: bool, tokens: int, cost: float) -> None:
        self.failed += not ok
        self.tokens += tokens
        self.cost += cost


class BatchError(Exception):
    """A run that cannot start (the journal belongs to another input, …): said plainly."""


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + ".journal")


def count_lines(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for raw in source if raw.strip())


class Runner:
    def __init__(self, plan: Plan, progress: Callable[[int, int], Progress]) -> None:
        self.plan, self.make_progress = plan, progress
        self.journal = Journal(journal_path(plan.output))
        self.stopping = asyncio.Event()
        # The run's name in idempotency keys: the same for every re-run into the same output.
        self.run_key = hashlib.sha256(str(plan.output.resolve()).encode()).hexdigest()[:16]

    async def run(self) -> Summary:
        plan = self.plan
        bind(self.journal, plan)
        total = count_lines(plan.source)
        skip = self.journal.done(plan.retry_failed)
        _, failed, tokens, cost = self.journal.totals()
        # Kept up to date here, not summed from the journal per line (that was O(n²): 100,000
        # lines took minutes of CPU, bench/batch.py).
        self.tally = Tally(failed, tokens, cost)
        progress = self.make_progress(total, len(skip))
        self._show(progress)
        queue: asyncio.Queue[Line | None] = asyncio.Queue(maxsize=plan.concurrency * 2)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                workers = [asyncio.create_task(self._work(session, queue, progress))
                           for _ in range(plan.concurrency)]
                await self._feed(queue, skip)
                await asyncio.gather(*workers)
        finally:
            progress.close()
        return finish(self.journal, plan.output, total, self.stopping.is_set())

    def stop(self) -> None:
        """Sends nothing new; what is in flight finishes and is kept (Ctrl-C)."""
        self.stopping.set()

    async def _feed(self, queue: asyncio.Queue[Line | None], skip: set[int]) -> None:
        for line in read_lines(self.plan.source):
            if self.stopping.is_set():
                break
            if line.seq not in skip:
                await queue.put(line)
        for _ in range(self.plan.concurrency):
            await queue.put(None)

    async def _work(self, session: aiohttp.ClientSession, queue: asyncio.Queue[Line | None],
                    progress: Progress) -> None:
        while (line := await queue.get()) is not None:
            if self.stopping.is_set():
                continue  # drain: the feeder's end markers still come
            output, ok, tokens, cost = await self._answer(session, line)
            self.journal.keep(line.id, line.seq, ok, output, tokens, cost)
            self.tally.add(ok, tokens, cost)
            progress.update(1)
            self._show(progress)

    def _show(self, progress: Progress) -> None:
        tally = self.tally
        progress.set_postfix_str(f"failed={tally.failed} tokens={tally.tokens:,} "
                                 f"cost=${tally.cost:.4f}", refresh=False)

    # ---- one line -----------------------------------------------------------------------------

    async def _answer(self, session: aiohttp.ClientSession,
                      line: Line) -> tuple[bytes, bool, int, float]:
        if line.problem is not None:
            return _error_line(line.id, 400, "INVALID_ARGUMENT", line.problem), False, 0, 0.0
        model = line.model or self.plan.model
        if model is None:
            return _error_line(line.id, 400, "INVALID_ARGUMENT",
                               "no model: give --model, or a model in the line"), False, 0, 0.0
        url, body, headers = self._request(line, model)
        for attempt in range(1, self.plan.attempts + 1):
            try:
                async with session.post(url, data=body, headers=headers) as answer:
                    payload = await answer.read()
                    status, waited = answer.status, answer.headers.get("Retry-After")
                    cost = float(answer.headers.get("x-gemgate-cost-usd") or 0)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == self.plan.attempts:
                    return _error_line(line.id, 503, "UNAVAILABLE",
                                       f"the gateway could not be reached: {exc}"), False, 0, 0.0
                await asyncio.sleep(_backoff(attempt, None))
                continue
            if status in _RETRIED and attempt < self.plan.attempts:
                await asyncio.sleep(_backoff(attempt, waited))
                continue
            return _result(line.id, status, payload, cost)
        raise AssertionError("unreachable")  # the last attempt always returns

    def _request(self, line: Line, model: str) -> tuple[str, bytes, dict[str, str]]:
        headers = {"Content-Type": "application/json", "x-gemgate-priority": self.plan.priority,
                   "Idempotency-Key": f"gemgate-batch-{self.run_key}-{line.id}"[:255]}
        base = self.plan.gateway.rstrip("/")
        if line.kind == "openai":
            if self.plan.token:
                headers["Authorization"] = f"Bearer {self.plan.token}"
            return (f"{base}/v1/chat/completions",
                    orjson.dumps({"model": model, **line.body, "stream": False}), headers)
        if self.plan.token:
            headers["x-goog-api-key"] = self.plan.token
        return (f"{base}/v1beta/models/{model}:generateContent", orjson.dumps(line.body),
                headers)


def bind(journal: Journal, plan: Plan) -> None:
    """Ties the journal to the run's input; a journal of another input is refused."""
    other = journal.bind(str(plan.source.resolve()))
    if other is not None:
        raise BatchError(f"{journal_path(plan.output)} belongs to a run of {other}; "
                         "write to another output, or delete the journal to start over")


def finish(journal: Journal, output: Path, total: int, stopped: bool) -> Summary:
    """How the run ends: the output written once every line is done, the journal closed."""
    done, failed, tokens, cost = journal.totals()
    complete = done == total and not stopped
    if complete:
        write_output(journal, output)
    journal.close()
    return Summary(total, done, failed, tokens, cost, complete)


def write_output(journal: Journal, output: Path) -> None:
    """The output in input order, replaced whole (never half written)."""
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as target:
        for line in journal.outputs():
            target.write(line + b"\n")
        target.flush()
        os.fsync(target.fileno())
    partial.replace(output)


def _result(line_id: str, status: int, payload: bytes,
            cost: float) -> tuple[bytes, bool, int, float]:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        data = None
    if 200 <= status < 300 and isinstance(data, dict):
        return orjson.dumps({"id": line_id, "response": data}), True, _tokens(data), cost
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        error = {"code": status, "message": payload[:500].decode("utf-8", "replace")}
    return orjson.dumps({"id": line_id, "error": error}), False, 0, cost


def _tokens(data: dict[str, Any]) -> int:
    usage = data.get("usageMetadata") or data.get("usage") or {}
    total = usage.get("totalTokenCount", usage.get("total_tokens", 0)) if isinstance(
        usage, dict) else 0
    return total if isinstance(total, int) else 0


def _error_line(line_id: str, code: int, status: str, message: str) -> bytes:
    return orjson.dumps({"id": line_id, "error": {"code": code, "status": status,
                                                  "message": message}})


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        with contextlib.suppress(ValueError):
            return min(60.0, max(0.05, float(retry_after)))
    return float(min(30.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
