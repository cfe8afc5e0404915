"""Google as an upstream of the relay's loop: pick (quota room from the scheduler, then a key
of that project from the pool), attempt (one HTTP call; a stream's first chunk read before
committing to it), release (the key returned with what the attempt revealed, the reservation
settled with Google's own count, a limit learnt from a 429)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from gemgate.core.answer import Answer, GoogleStream
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import NETWORK_FAILURE, TIMEOUT, Verdict, classify, error_status
from gemgate.core.events import Events, QueueWaited
from gemgate.pipeline.rights import over_own_limit
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId, problem
from gemgate.scheduling.estimate import estimate_tokens
from gemgate.scheduling.limits import LimitBook
from gemgate.scheduling.scheduler import Ask, Grant, NoRoom, Scheduler
from gemgate.secrets import StreamScrubber, scrub, scrub_headers
from gemgate.upstream.client import NETWORK_ERRORS, UpstreamClient
from gemgate.upstream.pool import KeyPool, Lease
from gemgate.usage import find_usage

# Calls that spend a model's quota, so go through admission.
QUOTA_ACTIONS = frozenset({"generateContent", "streamGenerateContent", "embedContent",
                           "batchEmbedContents"})
EMBED_ACTIONS = frozenset({"embedContent", "batchEmbedContents"})
_ERROR_STARTS = (b'data: {"error"', b'[{"error"', b'{"error"')
# Response headers that belong to one hop, or that aiohttp sets itself.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "server", "date", "alt-svc", "content-encoding"})


def estimated_usage(call: Call) -> dict[str, int]:
    """Google answers most embedding calls without usageMetadata, yet bills their input
    tokens: the request's own estimate (scheduling/estimate.py, which errs slightly high)
    stands in, so embeddings are metered and charged to budgets rather than recorded free."""
    if call.estimated_tokens is None:
        call.estimated_tokens = estimate_tokens(call.parsed)
    return {"promptTokenCount": call.estimated_tokens, "totalTokenCount": call.estimated_tokens}


def response_headers(upstream: aiohttp.ClientResponse,
                     secret: str | None = None) -> list[tuple[str, str]]:
    """Upstream's headers a client may see: not the hop-by-hop ones, and any key masked."""
    return scrub_headers([(k, v) for k, v in upstream.headers.items()
                          if k.lower() not in _HOP_HEADERS], secret)


def prompt_tokens(usage: dict[str, Any] | None) -> int | None:
    count = usage.get("promptTokenCount") if usage else None
    return count if isinstance(count, int) else None


@dataclass(slots=True)
class GooglePick:
    lease: Lease
    grant: Grant | None


class GoogleUpstream:
    def __init__(self, pool: KeyPool, client: UpstreamClient, scheduler: Scheduler | None,
                 limits: LimitBook, events: Events) -> None:
        self.pool, self.client, self.scheduler, self.limits = pool, client, scheduler, limits
        self.events = events

    async def pick(self, call: Call, tries: Tries, patience: float) -> GooglePick | Answer:
        """Quota room, then a key of that project; an answer when there is neither."""
        while True:
            grant = await self._admit(call, patience, tries)
            if isinstance(grant, NoRoom):
                if grant.problem == ProblemId.NO_HEALTHY_KEYS:
                    return self._no_key(call, tries)
                if grant.problem == ProblemId.KEY_RATE_LIMITED and call.tenant and \
                        call.tenant.key:
                    refused = over_own_limit(call.tenant.key, grant.retry_after_s or 1.0)
                    return Answer(429, gateway_problem=refused.problem,
                                  retry_after_s=refused.retry_after_s, message=refused.message)
                return Answer(problem(grant.problem).status, gateway_problem=grant.problem,
                              retry_after_s=grant.retry_after_s, quota_error=tries.quota_error)
            only = grant.project if grant is not None else call.affinity
            lease = self.pool.acquire(only=only, model=call.model)
            if lease is not None:
                return GooglePick(lease, grant)
            if grant is None:
                return self._no_key(call, tries)
            await self._settle(grant, None, counted=False)  # its project lost its last key
            tries.excluded.add(grant.project)

    async def _admit(self, call: Call, patience: float, tries: Tries) -> Grant | NoRoom | None:
        """A quota reservation for this attempt; None when the call spends no model quota."""
        if self.scheduler is None or call.action not in QUOTA_ACTIONS:
            return None
        if call.estimated_tokens is None:  # once per call, however many attempts
            call.estimated_tokens = estimate_tokens(call.parsed)
        tenant = call.tenant
        ask = Ask(call.model, call.estimated_tokens, call.priority,
                  tenant.name if tenant else "anonymous", tenant.weight if tenant else 1.0,
                  call.affinity, frozenset(tries.excluded), frozenset(tries.tried),
                  (call.key_scope,) if call.key_scope is not None else ())
        started = time.perf_counter()
        grant = await self.scheduler.admit(ask, patience)
        waited_ms = (time.perf_counter() - started) * 1000
        if waited_ms >= 1:  # an admission decided at once is no wait worth telling
            self.events.emit(call, QueueWaited(call.model, call.priority, waited_ms))
        return grant

    def _no_key(self, call: Call, tries: Tries) -> Answer:
        soonest = self.pool.soonest_recovery(call.model)
        if soonest is not None:
            return Answer(429, gateway_problem=ProblemId.ALL_PROJECTS_COOLING,
                          retry_after_s=soonest, quota_error=tries.quota_error)
        last = tries.last
        if last is not None and last.verdict is not None and last.verdict.action == "none":
            return last
        why = self.pool.why_unusable()
        if why is None:
            return Answer(503, gateway_problem=ProblemId.NO_HEALTHY_KEYS)
        return Answer(503, gateway_problem=ProblemId.NO_HEALTHY_KEYS, cause=why[1],
                      message=f"No upstream key is available: {why[0]}.")

    async def attempt(self, call: Call, pick: GooglePick,
                      limit_s: float) -> tuple[Answer, Verdict, Attempt]:
        lease = pick.lease
        started = time.perf_counter()
        status = 0
        try:
            async with asyncio.timeout(max(0.001, limit_s)):
                upstream = await self.client.send(call, lease)
                status = upstream.status
                if status == 200 and call.stream:
                    answer, verdict = await self._open_stream(upstream, lease)
                else:
                    # Every byte from upstream is scrubbed: two substring searches, ~0.1 µs
                    # for a typical answer (measured in bench.gateway: no visible cost).
                    body = scrub(await upstream.read(), lease.key.secret)
                    upstream.release()
                    verdict = classify(status, body)
                    answer = Answer(status, response_headers(upstream, lease.key.secret), body,
                                    verdict=verdict, secret=lease.key.secret)
        except TimeoutError:
            verdict = TIMEOUT
            answer = Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT, verdict=verdict)
        except NETWORK_ERRORS:
            verdict = NETWORK_FAILURE
            answer = Answer(502, gateway_problem=ProblemId.UPSTREAM_UNREACHABLE, verdict=verdict)
        return answer, verdict, Attempt(lease.project.name, lease.key.masked, status,
                                        verdict.problem,
                                        (time.perf_counter() - started) * 1000)

    async def _open_stream(self, upstream: aiohttp.ClientResponse,
                           lease: Lease) -> tuple[Answer, Verdict]:
        """Reads the first chunk before committing: an empty stream or an immediate error
        event is an error like any other, and can still be retried."""
        stream = GoogleStream(upstream, StreamScrubber(lease.key.secret))
        try:
            first = await stream.read()
        except BaseException:
            upstream.release()
            raise
        if not first or first.lstrip().startswith(_ERROR_STARTS):
            rest = await upstream.read() if first else b""
            upstream.release()
            body = scrub(_error_json(first + rest), lease.key.secret)
            code = error_status(body)
            verdict = classify(code, body) if body else NETWORK_FAILURE
            return Answer(code or 502, [("content-type", "application/json; charset=UTF-8")],
                          body, verdict=verdict, gateway_problem=None if body else
                          ProblemId.UPSTREAM_UNREACHABLE), verdict
        answer = Answer(200, response_headers(upstream, lease.key.secret), stream=stream,
                        first_chunk=first, lease=lease, secret=lease.key.secret)
        return answer, classify(200, b"")

    async def release(self, call: Call, pick: GooglePick, answer: Answer, verdict: Verdict,
                      tries: Tries) -> None:
        """What the attempt revealed, acted on; a stream keeps its key and reservation until
        it ends (`finish_stream`)."""
        lease, grant = pick.lease, pick.grant
        if verdict.retry and verdict.action == "none":
            tries.tried.add(lease.project.name)
        if verdict.violation:  # a 429 that names its limit corrects gemgate's view of it
            self.limits.learn(lease.project.name, call.model, verdict.violation)
        if answer.stream is not None:
            answer.grant = grant
            return
        self.pool.release(lease, verdict, call.model)
        if verdict.ok and call.action in QUOTA_ACTIONS:
            answer.usage = find_usage(answer.body)
            if answer.usage is None and call.action in EMBED_ACTIONS:
                answer.usage = estimated_usage(call)
        if grant is not None:
            counted = verdict.problem not in (ProblemId.QUOTA_EXHAUSTED,
                                              ProblemId.UPSTREAM_UNREACHABLE)
            await self._settle(grant, prompt_tokens(answer.usage), counted)

    async def finish_stream(self, answer: Answer, verdict: Verdict, tail: bytes) -> None:
        """Returns a stream's key and settles its reservation with the usage its last chunk
        reported (found by the stream's run, in `answer.usage`)."""
        if answer.lease is not None:
            self.pool.release(answer.lease, verdict)
        if answer.grant is not None:
            await self._settle(answer.grant, prompt_tokens(answer.usage), counted=True)

    async def _settle(self, grant: Grant, tokens: int | None, counted: bool) -> None:
        if self.scheduler is not None:
            await self.scheduler.settle(grant, tokens, counted)


def _error_json(raw: bytes) -> bytes:
    """The error object inside an SSE event or a JSON-array stream, as a plain JSON body."""
    text = raw.strip()
    if text.startswith(b"data: "):
        text = text[6:].split(b"\n", 1)[0].strip()
    if text.startswith(b"["):
        text = text[1:].rstrip(b"]").strip()
    return text
