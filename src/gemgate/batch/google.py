"""`gemgate batch run --mode google`: the same input through Gemini's Batch API (half the
price, a 24-hour target) — via the gateway, so keys, tenants and metering stay its business.

The lines are grouped by model (a job serves one model) and cut into jobs within Google's size
limit (`max_job_bytes`, under the 2 GB file limit); each job's JSONL is uploaded (resumable,
8 MiB chunks), the job created, then every job polled (its batchStats drive the progress bar)
until it ends; each results file is downloaded (the gateway meters it, once, at the batch
price) and its lines written to the journal under their input lines' places, so OUT.jsonl has
the same format and order as an interactive run. The journal also keeps each job's name the
moment it is created: a re-run polls the jobs it has instead of creating them again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError

from gemgate.batch.journal import Journal
from gemgate.batch.lines import Line, read_lines
from gemgate.batch.runner import (
    BatchError,
    Plan,
    Progress,
    Summary,
    bind,
    finish,
    journal_path,
)
from gemgate.compat.chat_request import ChatRequest, to_gemini

CHUNK = 8 * 1024 * 1024
MAX_JOB_BYTES = 1_900_000_000  # Google takes input files up to 2 GB
_ENDED = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED",
          "BATCH_STATE_EXPIRED")


@dataclass
class Job:
    number: int
    model: str
    seqs: list[int]
    body: bytearray


class GoogleBatch:
    def __init__(self, plan: Plan, progress: Any, poll_s: float = 10.0,
                 max_job_bytes: int = MAX_JOB_BYTES) -> None:
        self.plan, self.make_progress = plan, progress
        self.poll_s, self.max_job_bytes = poll_s, max_job_bytes
        self.journal = Journal(journal_path(plan.output))
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> Summary:
        plan = self.plan
        bind(self.journal, plan)
        skip = self.journal.done(plan.retry_failed)
        total = 0
        async with aiohttp.ClientSession(headers=self._auth()) as session:
            jobs = self.journal.jobs()
            ids: dict[int, str] = {}
            for line in read_lines(plan.source):
                total += 1
                ids[line.seq] = line.id
            if not jobs:  # a first run: make the jobs (a re-run polls the ones it has)
                for job in self._cut(skip):
                    name = await self._create(session, job)
                    self.journal.keep_job(name, job.model, job.seqs)
                jobs = self.journal.jobs()
            progress: Progress = self.make_progress(total, len(skip))
            try:
                await self._follow(session, jobs, ids, progress)
            finally:
                progress.close()
        return finish(self.journal, plan.output, total, self.stopping.is_set())

    def _auth(self) -> dict[str, str]:
        return {"x-goog-api-key": self.plan.token} if self.plan.token else {}

    # ---- making the jobs --------------------------------------------------------------------

    def _cut(self, skip: set[int]) -> Iterator[Job]:
        """Lines not done yet, as Google's file lines, grouped by model and cut by size; a
        line that cannot be sent is answered with its error at once (journal)."""
        open_jobs: dict[str, Job] = {}
        number = 0
        for line in read_lines(self.plan.source):
            if line.seq in skip:
                continue
            model = line.model or self.plan.model
            request, problem = _request(line)
            if problem is not None or model is None:
                why = problem or "no model: give --model, or a model in the line"
                self.journal.keep(line.id, line.seq, False, orjson.dumps(
                    {"id": line.id, "error": {"code": 400, "status": "INVALID_ARGUMENT",
                                              "message": why}}), 0, 0.0)
                continue
            encoded = orjson.dumps({"key": line.id, "request": request}) + b"\n"
            job = open_jobs.get(model)
            if job is not None and len(job.body) + len(encoded) > self.max_job_bytes:
                yield job
                job = None
            if job is None:
                number += 1
                job = open_jobs[model] = Job(number, model, [], bytearray())
            job.seqs.append(line.seq)
            job.body += encoded
        yield from (job for job in open_jobs.values() if job.seqs)

    async def _create(self, session: aiohttp.ClientSession, job: Job) -> str:
        base = self.plan.gateway.rstrip("/")
        name = await _upload(session, base, bytes(job.body),
                             f"gemgate-batch-{self.plan.output.name}-{job.number}")
        body = {"batch": {"displayName": f"gemgate {self.plan.output.name} #{job.number}",
                          "inputConfig": {"fileName": name}}}
        async with session.post(f"{base}/v1beta/models/{job.model}:batchGenerateContent",
                                json=body) as answer:
            created = await _json(answer, "create the batch job")
        return str(created["name"])

    # ---- following them ---------------------------------------------------------------------

    async def _follow(self, session: aiohttp.ClientSession, jobs: list[tuple[str, str, str]],
                      ids: dict[int, str], progress: Progress) -> None:
        base = self.plan.gateway.rstrip("/")
        waiting = {name for name, _, state in jobs if state not in _ENDED}
        seen: dict[str, int] = {}
        while waiting and not self.stopping.is_set():
            for name in sorted(waiting):
                async with session.get(f"{base}/v1beta/{name}") as answer:
                    job = await _json(answer, f"read {name}")
                metadata = job.get("metadata") or {}
                state = str(metadata.get("state") or "")
                stats = metadata.get("batchStats") or {}
                finished = int(stats.get("successfulRequestCount") or 0) + int(
                    stats.get("failedRequestCount") or 0)
                progress.update(max(0, finished - seen.get(name, 0)))
                seen[name] = max(finished, seen.get(name, 0))
                progress.set_postfix_str(f"{name} {state.removeprefix('BATCH_STATE_')}",
                                         refresh=False)
                if state in _ENDED:
                    await self._collect(session, name, state, metadata, ids)
                    waiting.discard(name)
            if waiting:
                with contextlib.suppress(TimeoutError):  # a poll every poll_s, or Ctrl-C
                    await asyncio.wait_for(self.stopping.wait(), self.poll_s)

    async def _collect(self, session: aiohttp.ClientSession, name: str, state: str,
                       metadata: dict[str, Any], ids: dict[int, str]) -> None:
        seqs = self.journal.job_lines(name)
        by_id = {ids[seq]: seq for seq in seqs}
        results_file = (metadata.get("output") or {}).get("responsesFile")
        answered: set[int] = set()
        if state == "BATCH_STATE_SUCCEEDED" and isinstance(results_file, str):
            base = self.plan.gateway.rstrip("/")
            async with session.get(f"{base}/v1beta/{results_file}:download",
                                   params={"alt": "media"}) as answer:
                if answer.status != 200:
                    raise BatchError(f"could not download {results_file}: {answer.status}")
                data = await answer.read()
            for raw in data.splitlines():
                if not raw.strip():
                    continue
                result = orjson.loads(raw)
                seq = by_id.get(str(result.get("key")))
                if seq is None:
                    continue
                ok = "response" in result
                output = {"id": ids[seq], **({"response": result["response"]} if ok
                                              else {"error": result.get("error")})}
                usage = (result.get("response") or {}).get("usageMetadata") or {}
                self.journal.keep(ids[seq], seq, ok, orjson.dumps(output),
                                  int(usage.get("totalTokenCount") or 0), 0.0)
                answered.add(seq)
        for seq in seqs:  # a job that ended without an answer for a line: say why
            if seq not in answered:
                self.journal.keep(ids[seq], seq, False, orjson.dumps(
                    {"id": ids[seq], "error": {"code": 500, "status": state,
                                               "message": f"the batch job {name} ended "
                                                          f"{state} without this line"}}),
                    0, 0.0)
        self.journal.end_job(name, state)


def _request(line: Line) -> tuple[dict[str, Any] | None, str | None]:
    if line.problem is not None:
        return None, line.problem
    if line.kind == "gemini":
        return line.body, None
    try:
        return to_gemini(ChatRequest.model_validate(line.body)), None
    except (ValidationError, ValueError) as exc:
        return None, f"this OpenAI body cannot be sent to the Batch API: {exc}"


async def _upload(session: aiohttp.ClientSession, base: str, data: bytes,
                  display_name: str) -> str:
    """Google's resumable upload, through the gateway: start, then chunks, the last one
    finalizing; the file's name."""
    start = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
             "X-Goog-Upload-Header-Content-Length": str(len(data)),
             "X-Goog-Upload-Header-Content-Type": "application/jsonl"}
    async with session.post(f"{base}/upload/v1beta/files", headers=start,
                            json={"file": {"displayName": display_name,
                                           "mimeType": "application/jsonl"}}) as answer:
        if answer.status != 200:
            raise BatchError(f"the upload was refused: {answer.status} "
                             f"{(await answer.text())[:300]}")
        url = answer.headers["x-goog-upload-url"]
    offset = 0
    while True:
        chunk = data[offset:offset + CHUNK]
        last = offset + len(chunk) >= len(data)
        headers = {"X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                   "X-Goog-Upload-Offset": str(offset)}
        async with session.post(url, data=chunk, headers=headers) as answer:
            if last:
                uploaded = await _json(answer, "upload the input file")
                return str(uploaded["file"]["name"])
            if answer.status != 200:
                raise BatchError(f"an upload chunk was refused: {answer.status}")
        offset += len(chunk)


async def _json(answer: aiohttp.ClientResponse, doing: str) -> dict[str, Any]:
    body = await answer.read()
    if answer.status != 200:
        said = body[:300].decode("utf-8", "replace")
        raise BatchError(f"could not {doing}: {answer.status} {said}")
    found = orjson.loads(body)
    if not isinstance(found, dict):
        raise BatchError(f"could not {doing}: an answer that is not a JSON object")
    return found

