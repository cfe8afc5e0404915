"""Gemini's Batch API as Google serves it to the SDKs: `models/M:batchGenerateContent` creates a
job from inline requests or from an uploaded JSONL file; `batches/ID` gets it, `batches` lists
them a page at a time, `batches/ID:cancel` cancels, DELETE deletes. Each job belongs to the
project whose key made it (another project's key gets 403, as at Google).

A job is a long-running operation: BATCH_STATE_PENDING for the first half of `batch_seconds`,
RUNNING for the second, then SUCCEEDED with one result per request — inline for inline input,
a JSONL results file (`files/…`, downloadable) for file input — where a request Google would
refuse carries its own `error`. A job whose input has no usable line FAILS; one still unfinished
after `batch_expire_seconds` is EXPIRED, without results. States are worked out when a job is
read (no background task), so a test can move time by tuning those two settings."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gemgate.google_errors import error_body
from gemgate.simulator import errors, validate
from gemgate.simulator.core import Caller, Simulator
from gemgate.simulator.files import FilesSurface
from gemgate.simulator.server import VERSIONS, api_key, json_response

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
Answerer = Callable[[str, Any], tuple[int, dict[str, Any]]]


@dataclass
class _Job:
    id: str
    project: str
    model: str
    display_name: str
    requests: list[tuple[Any, Any]]  # (request, metadata or key)
    from_file: bool
    created: float
    cancelled_at: float | None = None
    outcome: str | None = None  # SUCCEEDED, FAILED, EXPIRED once decided
    results: list[dict[str, Any]] = field(default_factory=list)
    results_file: str | None = None
    ended: float | None = None
    input_problem: str | None = None


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class BatchesSurface:
    def __init__(self, sim: Simulator, files: FilesSurface, answer: Answerer,
                 clock: Callable[[], float] = time.time) -> None:
        self.sim, self.files, self.answer, self.clock = sim, files, answer, clock
        self._jobs: dict[str, _Job] = {}

    def routes(self) -> list[web.RouteDef]:
        base = f"/{{version:{VERSIONS}}}/batches"
        return [web.get(base, self.list_jobs), web.get(base + "/{id}", self.get),
                web.post(base + "/{id}", self.cancel), web.delete(base + "/{id}", self.delete)]

    # ---- create -------------------------------------------------------------------------------

    async def create(self, request: web.Request, caller: Caller, model: str) -> web.Response:
        try:
            body = validate.parse_json_object(await request.read())
            batch = body.get("batch")
            if not isinstance(batch, dict):
                raise validate.Invalid("Invalid JSON payload: 'batch' is required", "batch")
            source = batch.get("inputConfig") or batch.get("input_config")
            if not isinstance(source, dict):
                raise validate.Invalid("batch.input_config is required", "batch.input_config")
            lines, from_file, problem = self._input(source, caller)
        except validate.Invalid as exc:
            self.sim.record(caller, model, "batchGenerateContent", 400)
            return json_response(*errors.invalid_argument(exc.message, exc.field))
        job_id = base64.b32encode(os.urandom(10)).decode().lower().rstrip("=")
        job = _Job(job_id, caller.project.name, model, str(batch.get("displayName") or ""),
                   lines, from_file, self.clock(), input_problem=problem)
        self._jobs[job_id] = job
        self.sim.record(caller, model, "batchGenerateContent", 200)
        return json_response(200, orjson.dumps(self._operation(job)))

    def _input(self, source: dict[str, Any],
               caller: Caller) -> tuple[list[tuple[Any, Any]], bool, str | None]:
        inline = source.get("requests")
        if isinstance(inline, dict):
            items = inline.get("requests")
            if not isinstance(items, list) or not items:
                raise validate.Invalid("batch.input_config.requests.requests must not be empty",
                                       "batch.input_config.requests")
            return [(i.get("request") if isinstance(i, dict) else None,
                     i.get("metadata") if isinstance(i, dict) else None) for i in items], \
                False, None
        name = source.get("fileName") or source.get("file_name")
        if not isinstance(name, str):
            raise validate.Invalid("batch.input_config needs requests or file_name",
                                   "batch.input_config")
        file_id = name.removeprefix("files/")
        if self.files.owner_of(file_id) != caller.project.name:
            raise validate.Invalid(f"File {name} not found (or permission denied)",
                                   "batch.input_config.file_name")
        lines: list[tuple[Any, Any]] = []
        for raw in self.files.data_of(file_id).splitlines():
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                lines.append((None, None))
                continue
            lines.append((line.get("request"), line.get("key")) if isinstance(line, dict)
                         else (None, None))
        usable = any(request is not None for request, _ in lines)
        return lines, True, None if usable else "the input file holds no request line"

    # ---- the job's life -------------------------------------------------------------------------

    def _state(self, job: _Job) -> str:
        if job.outcome is not None:
            return job.outcome
        now, config = self.clock(), self.sim.config
        if job.cancelled_at is not None:
            return "BATCH_STATE_CANCELLED"
        if now - job.created >= config.batch_expire_seconds and \
                config.batch_seconds > config.batch_expire_seconds:
            self._end(job, "BATCH_STATE_EXPIRED", job.created + config.batch_expire_seconds)
        elif now - job.created >= config.batch_seconds:
            self._finish(job)
        elif now - job.created >= config.batch_seconds / 2:
            return "BATCH_STATE_RUNNING"
        else:
            return "BATCH_STATE_PENDING"
        return job.outcome or "BATCH_STATE_PENDING"

    def _end(self, job: _Job, outcome: str, when: float) -> None:
        job.outcome, job.ended = outcome, when

    def _finish(self, job: _Job) -> None:
        if job.input_problem is not None:
            self._end(job, "BATCH_STATE_FAILED", job.created + self.sim.config.batch_seconds)
            return
        for request, tag in job.requests:
            status, answer = self.answer(job.model, request) if request is not None else (
                400, {"code": 400, "message": "Invalid JSON line", "status": "INVALID_ARGUMENT"})
            result: dict[str, Any] = {"response": answer} if status == 200 else {"error": answer}
            if job.from_file:
                result = {"key": tag, **result}
            elif tag is not None:
                result["metadata"] = tag
            job.results.append(result)
        if job.from_file:
            data = b"\n".join(orjson.dumps(r) for r in job.results) + b"\n"
            job.results_file = self.files.store(job.project, f"batch-{job.id}", data,
                                                "application/jsonl", generated=True)
        self._end(job, "BATCH_STATE_SUCCEEDED", job.created + self.sim.config.batch_seconds)

    def _operation(self, job: _Job) -> dict[str, Any]:
        state = self._state(job)
        done = sum(1 for r in job.results if "response" in r)
        failed = len(job.results) - done
        stats = {"requestCount": str(len(job.requests)),
                 "successfulRequestCount": str(done), "failedRequestCount": str(failed),
                 "pendingRequestCount": str(len(job.requests) - len(job.results))}
        updated = job.ended or job.cancelled_at or self.clock()
        metadata: dict[str, Any] = {
            "@type": _TYPE, "model": f"models/{job.model}", "displayName": job.display_name,
            "state": state, "createTime": _stamp(job.created), "updateTime": _stamp(updated),
            "batchStats": stats, "name": f"batches/{job.id}"}
        operation: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": metadata}
        if job.ended is not None or job.cancelled_at is not None:
            metadata["endTime"] = _stamp(updated)
            operation["done"] = True
        if state == "BATCH_STATE_SUCCEEDED":
            output = {"responsesFile": job.results_file} if job.from_file else \
                {"inlinedResponses": {"inlinedResponses": job.results}}
            metadata["output"] = output
            operation["response"] = {"@type": _TYPE, **{k: v for k, v in metadata.items()
                                                        if k != "@type"}}
        if state == "BATCH_STATE_FAILED":
            operation["error"] = {"code": 3, "message": job.input_problem or "failed"}
        return operation

    # ---- get, list, cancel, delete --------------------------------------------------------------

    def _owned(self, request: web.Request, name: str) -> tuple[_Job | None, web.Response | None]:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return None, json_response(*(denial or errors.missing_key()))
        job = self._jobs.get(name)
        if job is None or job.project != caller.project.name:
            self.sim.record(caller, "", "batches.get", 404)
            return None, json_response(404, error_body(
                404, f"Requested entity was not found: batches/{name}", "NOT_FOUND"))
        self.sim.record(caller, job.model, "batches.get", 200)
        return job, None

    async def get(self, request: web.Request) -> web.Response:
        job, refusal = self._owned(request, request.match_info["id"])
        return refusal or json_response(200, orjson.dumps(self._operation(job) if job else {}))

    async def cancel(self, request: web.Request) -> web.Response:
        name, _, verb = request.match_info["id"].partition(":")
        if verb != "cancel":
            return json_response(404, error_body(404, f"Method not found: {request.path}",
                                                 "NOT_FOUND"))
        job, refusal = self._owned(request, name)
        if refusal or job is None:
            return refusal or json_response(500, b"{}")
        if self._state(job) in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            job.cancelled_at = self.clock()
            job.outcome = "BATCH_STATE_CANCELLED"
            job.ended = job.cancelled_at
        return json_response(200, b"{}")

    async def delete(self, request: web.Request) -> web.Response:
        job, refusal = self._owned(request, request.match_info["id"])
        if refusal or job is None:
            return refusal or json_response(500, b"{}")
        del self._jobs[job.id]
        return json_response(200, b"{}")

    async def list_jobs(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return json_response(*(denial or errors.missing_key()))
        try:
            size = int(request.query.get("pageSize") or 50)
            start = int(base64.urlsafe_b64decode(request.query.get("pageToken") or "MA==") or 0)
        except ValueError:
            return json_response(*errors.invalid_argument("Invalid page token or page size.", ""))
        size = 50 if size <= 0 else min(size, 1000)
        mine = sorted((j for j in self._jobs.values() if j.project == caller.project.name),
                      key=lambda j: j.created, reverse=True)
        page: dict[str, Any] = {"operations": [self._operation(j)
                                               for j in mine[start:start + size]]}
        if start + size < len(mine):
            page["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        self.sim.record(caller, "", "batches.list", 200)
        return json_response(200, orjson.dumps(page))
