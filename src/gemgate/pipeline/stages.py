"""The stages every edge runs a call through, in order: auth → (the edge reads and checks the
body) → route → rights → affinity → relay; and, on the way back, the access log and the meter.

Edges differ only in the wire format they read and write (Gemini's, OpenAI's); what happens to
a call between the two is here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gemgate.logs import access_log
from gemgate.pipeline.answer import Answer
from gemgate.pipeline.auth import Authenticator
from gemgate.pipeline.call import Call
from gemgate.pipeline.guard import MODEL_ACTIONS
from gemgate.pipeline.listing import listing
from gemgate.pipeline.meter import Meter
from gemgate.pipeline.relay import Relay
from gemgate.pipeline.rights import Refusal, Rights
from gemgate.pipeline.route import Router
from gemgate.problems import ProblemId
from gemgate.problems import problem as problem_record
from gemgate.upstream.affinity import ResourceOwners, collection, single
from gemgate.upstream.classify import OK, Verdict
from gemgate.upstream.client import forwardable


@dataclass(slots=True)
class StreamProgress:
    """How far a stream got: the verdict so far and its last bytes (where the usage is)."""

    verdict: Verdict
    tail: bytes
    finished: bool = False

    def relayed(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-8192:]


def refusal(problem: ProblemId, message: str = "") -> Refusal:
    """A refusal with its usual status; an empty message means the problem's own."""
    return Refusal(problem, problem_record(problem).status, message)


def _deadline_s(request: web.Request, default: float) -> float:
    """The client's X-Server-Timeout (seconds) when shorter than the gateway's own deadline."""
    asked = request.headers.get("X-Server-Timeout")
    try:
        seconds = float(asked) if asked else default
    except ValueError:
        return default
    # Zero, negative or NaN would make every call a deadline failure of the gateway's: ignored.
    return min(default, seconds) if seconds > 0 else default


class Pipeline:
    def __init__(self, auth: Authenticator, router: Router, rights: Rights, relay: Relay,
                 meter: Meter, owners: ResourceOwners, deadline_s: float,
                 log_requests: bool = True) -> None:
        self.auth, self.router, self.rights, self.relay = auth, router, rights, relay
        self.meter, self.owners = meter, owners
        self.deadline_s = deadline_s
        self.log_requests = log_requests

    def new_call(self, request: web.Request, version: str, path: str, query: str,
                 lang: str, request_id: str) -> Call:
        headers = {k: v for k, v in request.headers.items() if forwardable(k)}
        call = Call(request_id=request_id, method=request.method, version=version, path=path,
                    query=query, headers=headers, body=b"", lang=lang)
        call.deadline = call.started + _deadline_s(request, self.deadline_s)
        call.client_ip = self.auth.address.of(request)
        return call

    def authenticate(self, request: web.Request, call: Call) -> ProblemId | None:
        """Sets the call's tenant; the id of the problem when the caller is refused."""
        tenant, problem = self.auth.authenticate(request, call.client_ip)
        call.tenant = tenant
        return problem

    def admit(self, call: Call, request: web.Request) -> Refusal | None:
        """Route, then rights: which model answers, and may this caller have it now."""
        problem = self.router.route(call, request)
        if problem == ProblemId.MODEL_NAME_INVALID:
            return refusal(problem, f"Model name {call.refused_model[:200]!r} is not a valid "
                                    "model id.")
        if problem is not None:
            return refusal(problem)
        return self.rights.check(call)

    async def forward(self, call: Call) -> Answer:
        """Resources first (a tenant reaches only its own, in the project that holds them),
        then the relay; a successful create or delete updates who owns what."""
        if not self.owners.check(call):
            return Answer(404, gateway_problem=ProblemId.RESOURCE_NOT_FOUND)
        kind = collection(call)
        if kind is not None:
            return await listing(self.relay, self.owners, call, kind)
        answer = await self.relay.forward(call)
        if 200 <= answer.status < 300 and answer.stream is None and call.attempts and \
                call.tenant is not None and call.action not in MODEL_ACTIONS:
            if call.method == "POST":
                await self.owners.created(call.tenant.id, answer.body,
                                          call.attempts[-1].project)
            elif call.method == "DELETE" and (name := single(call)) is not None:
                await self.owners.deleted(name)
        return answer

    def end_stream(self, answer: Answer, verdict: Verdict, tail: bytes) -> None:
        """A stream is over (finished, broken or abandoned): return its key, settle its quota
        with the usage in its last bytes."""
        self.relay.finish_stream(answer, verdict, tail)

    async def finish(self, call: Call, status: int, problem: ProblemId | None,
                     usage: dict[str, Any] | None = None) -> None:
        """The request's access-log line and its ledger record, committed before the answer's
        last byte leaves."""
        self.log(call, status, problem, usage)
        await self.meter.commit(call, status, problem, usage)

    @asynccontextmanager
    async def streaming(self, call: Call, answer: Answer) -> AsyncIterator[StreamProgress]:
        """Wraps an edge's relaying of a stream. A client that goes away before the end is
        recorded as cancelled (499) with the usage of the last chunk it was sent, and the
        upstream is dropped; the edge reports what it relayed in the progress it is given."""
        progress = StreamProgress(OK, answer.first_chunk)
        try:
            yield progress
        except ConnectionResetError:
            if not progress.finished:
                self._abandoned(call, answer, progress)
        except asyncio.CancelledError:
            if not progress.finished:
                self._abandoned(call, answer, progress)
            raise

    async def stream_ended(self, call: Call, answer: Answer, progress: StreamProgress,
                           status: int, broken: bool) -> None:
        """The stream is over: the upstream connection reused (or dropped when `broken`), the
        key returned, the quota settled, and the record committed before the last byte."""
        assert answer.stream is not None
        if broken:
            answer.stream.close()
        else:
            answer.stream.release()
        self.end_stream(answer, progress.verdict, progress.tail)
        progress.finished = True
        await self.finish(call, status, progress.verdict.problem, answer.usage)

    def _abandoned(self, call: Call, answer: Answer, progress: StreamProgress) -> None:
        assert answer.stream is not None
        answer.stream.close()
        self.end_stream(answer, progress.verdict, progress.tail)
        self.log(call, 499, progress.verdict.problem, answer.usage)
        self.meter.record(call, 499, progress.verdict.problem, answer.usage, cancelled=True,
                          wait=False)

    def log(self, call: Call, status: int, problem: ProblemId | None,
            usage: dict[str, Any] | None = None) -> None:
        writer = access_log()
        if writer is None or not self.log_requests:
            return
        last = call.attempts[-1] if call.attempts else None
        fields: dict[str, object] = {
            "request_id": call.request_id,
            "tenant": call.tenant.name if call.tenant else None,
            "method": call.method,
            "surface": call.surface,
            "route": f"/{call.version}/{call.path}" if call.version else f"/{call.path}",
            "model": call.model or None,
            "model_asked": call.model_asked if call.model_asked != call.model else None,
            "priority": call.priority,
            "stream": call.stream,
            "provider": last.provider if last else None,
            "project": last.project if last else None,
            "key": last.masked_key if last else None,
            "status": status,
            "problem": problem,
            "attempts": len(call.attempts),
            "upstream_ms": round(sum(a.upstream_ms for a in call.attempts), 2),
            "total_ms": round(call.elapsed_ms(), 2),
        }
        if usage:
            fields["tokens"] = usage
        writer.write(fields)
