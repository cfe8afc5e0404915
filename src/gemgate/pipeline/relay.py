"""The relay stage: admit, pick a key, call Google, and retry, fail over or fall back until an
answer is worth passing on or the deadline is spent.

For each model of the call's chain (the model asked, then its fallbacks), every attempt first
reserves room in a project's quota windows (the scheduler), then borrows a key of that project
(the pool). Retries happen only before the first byte reaches the client: a stream is returned
with its first chunk already read, so an upstream that fails at once is retried like any other
error.

A link named `<provider>/<model>` is an OpenAI-compatible provider (upstream/providers.py): its
keys are tried in turn, with the same retry budget and deadline, when the Gemini links before it
failed in a way another upstream may not.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from gemgate.config import RetryConfig
from gemgate.pipeline.answer import Answer, GoogleStream
from gemgate.pipeline.call import Attempt, Call
from gemgate.pipeline.events import AttemptMade, Events, FellBack, QueueWaited
from gemgate.pipeline.route import Router
from gemgate.problems import ProblemId, may_fall_back, problem
from gemgate.scheduling.estimate import estimate_tokens
from gemgate.scheduling.limits import LimitBook
from gemgate.scheduling.scheduler import Ask, Grant, NoRoom, Scheduler
from gemgate.secrets import StreamScrubber, scrub, scrub_headers
from gemgate.upstream.classify import NETWORK_FAILURE, TIMEOUT, Verdict, classify, error_of
from gemgate.upstream.client import NETWORK_ERRORS, UpstreamClient
from gemgate.upstream.pool import KeyPool, Lease
from gemgate.upstream.providers import Link, Providers
from gemgate.usage import find_usage

# Calls that spend a model's quota, so go through admission.
QUOTA_ACTIONS = frozenset({"generateContent", "streamGenerateContent", "embedContent",
                           "batchEmbedContents"})
GENERATE_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
# Google's advice for 500 INTERNAL is to retry once: a second 500 for the same body (from
# another project, where the retry goes) says the body is the cause — a request Google's
# parser chokes on would otherwise be sent five times. 503s and lost connections keep the
# whole retry budget.
_MAX_INTERNAL_ERRORS = 2
_PROVIDER_DOWN = Verdict(ProblemId.PROVIDER_UNAVAILABLE, retry=True, reason="connection failed")


_ERROR_STARTS = (b'data: {"error"', b'[{"error"', b'{"error"')
# Response headers that belong to one hop, or that aiohttp sets itself.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "server", "date", "alt-svc", "content-encoding"})


def response_headers(upstream: aiohttp.ClientResponse,
                     secret: str | None = None) -> list[tuple[str, str]]:
    """Upstream's headers a client may see: not the hop-by-hop ones, and any key masked."""
    return scrub_headers([(k, v) for k, v in upstream.headers.items()
                          if k.lower() not in _HOP_HEADERS], secret)


def _prompt_tokens(usage: dict[str, Any] | None) -> int | None:
    count = usage.get("promptTokenCount") if usage else None
    return count if isinstance(count, int) else None


class Relay:
    def __init__(self, pool: KeyPool, client: UpstreamClient, retry: RetryConfig,
                 scheduler: Scheduler | None, limits: LimitBook, router: Router,
                 fallback_after_s: float, providers: Providers,
                 events: Events | None = None) -> None:
        self.pool, self.client, self.retry = pool, client, retry
        self.scheduler, self.limits, self.router = scheduler, limits, router
        self.fallback_after_s = fallback_after_s
        self.providers = providers
        self.events = events or Events()

    async def forward(self, call: Call) -> Answer:
        chain = self.router.chain(call)
        answer = Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT)
        for index, model in enumerate(chain):
            last_link = index == len(chain) - 1
            if index:
                self.events.emit(call, FellBack(call.model, model, answer.problem))
                call.use_model(model)
            patience = call.remaining() if last_link else min(self.fallback_after_s,
                                                              call.remaining())
            link = self.providers.link(model) if self.providers else None
            if link is not None:
                answer = await self._through_provider(call, link)
            else:
                answer = await self._through_model(call, patience)
            if last_link or not may_fall_back(answer.problem) or call.remaining() <= 0:
                return answer
        return answer

    async def _admit(self, call: Call, patience: float, excluded: set[str],
                     tried: set[str]) -> Grant | NoRoom | None:
        """A quota reservation for this attempt; None when the call spends no model quota."""
        if self.scheduler is None or call.action not in QUOTA_ACTIONS:
            return None
        if call.estimated_tokens is None:  # once per call, however many attempts
            call.estimated_tokens = estimate_tokens(call.parsed)
        tenant = call.tenant
        ask = Ask(call.model, call.estimated_tokens, call.priority,
                  tenant.name if tenant else "anonymous", tenant.weight if tenant else 1.0,
                  call.affinity, frozenset(excluded), frozenset(tried))
        started = time.perf_counter()
        grant = await self.scheduler.admit(ask, patience)
        waited_ms = (time.perf_counter() - started) * 1000
        if waited_ms >= 1:  # an admission decided at once is no wait worth telling
            self.events.emit(call, QueueWaited(call.model, call.priority, waited_ms))
        return grant

    async def _through_model(self, call: Call, patience: float) -> Answer:
        last: Answer | None = None
        quota_error = b""
        excluded: set[str] = set()  # projects found unusable during this call
        tried: set[str] = set()  # projects that failed this call transiently
        attempt = internal_errors = 0
        while attempt < self.retry.attempts:
            grant = await self._admit(call, min(patience, call.remaining()), excluded, tried)
            if isinstance(grant, NoRoom):
                if grant.problem == ProblemId.NO_HEALTHY_KEYS:
                    return self._no_key(call, last, quota_error)
                return Answer(problem(grant.problem).status, gateway_problem=grant.problem,
                              retry_after_s=grant.retry_after_s, quota_error=quota_error)
            only = grant.project if grant is not None else call.affinity
            lease = self.pool.acquire(only=only, model=call.model)
            if lease is None:
                if grant is not None:  # the project lost its last key meanwhile: try another
                    self._settle(grant, None, counted=False)
                    excluded.add(grant.project)
                    continue
                return self._no_key(call, last, quota_error)
            answer, verdict = await self._attempt(call, lease)
            # A key's own fault does not spend the retry budget: it takes the key out of the
            # running, so those retries are bounded by the pool's size. Everything else does,
            # 429s included, so a limit gemgate cannot learn is not retried until the deadline.
            if verdict.action not in ("disable_key", "disable_project"):
                attempt += 1
            if verdict.retry and verdict.action == "none":
                tried.add(lease.project.name)
            self._learn(lease, call.model, verdict)
            if answer.stream is None:
                self.pool.release(lease, verdict, call.model)
                if verdict.ok and call.action in QUOTA_ACTIONS:
                    answer.usage = find_usage(answer.body)
                if grant is not None:
                    counted = verdict.problem not in (ProblemId.QUOTA_EXHAUSTED,
                                                      ProblemId.UPSTREAM_UNREACHABLE)
                    self._settle(grant, _prompt_tokens(answer.usage), counted)
            else:
                answer.grant = grant
            if verdict.ok or not verdict.retry:
                return answer
            if answer.status == 500:
                internal_errors += 1
                if internal_errors >= _MAX_INTERNAL_ERRORS:
                    return answer
            if verdict.problem == ProblemId.QUOTA_EXHAUSTED:
                quota_error = answer.body
            if last is None or not _own_fault(verdict) or last.verdict is None or \
                    _own_fault(last.verdict):
                last = answer  # Google's answer about the request explains more than our key's
            if not await self._wait_to_retry(call, attempt, verdict):
                break
        return last if last is not None else Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT)

    async def _through_provider(self, call: Call, link: Link) -> Answer:
        """The provider's keys in turn, with backoff on its server errors, until an answer
        worth passing on or the deadline."""
        if call.action not in GENERATE_ACTIONS:
            return Answer(400, gateway_problem=ProblemId.PROVIDER_UNSUPPORTED)
        provider = link.provider
        last: Answer | None = None
        for attempt in range(1, self.retry.attempts + 1):
            key = provider.next_key(time.monotonic())
            if key is None:
                return last or Answer(429, gateway_problem=ProblemId.PROVIDER_KEYS_RESTING,
                                      retry_after_s=provider.soonest(time.monotonic()))
            started = time.perf_counter()
            try:
                async with asyncio.timeout(max(0.001, self._attempt_limit(call))):
                    answer, verdict = await self.providers.attempt(call, link, key)
            except TimeoutError:
                verdict = TIMEOUT
                answer = Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT, verdict=verdict)
            except NETWORK_ERRORS:
                verdict = _PROVIDER_DOWN
                answer = Answer(502, gateway_problem=ProblemId.PROVIDER_UNAVAILABLE,
                                verdict=verdict)
            self._attempted(call, Attempt(provider.name, key.masked, answer.status if
                                          answer.gateway_problem is None else 0,
                                          verdict.problem,
                                          (time.perf_counter() - started) * 1000,
                                          provider.name))
            if verdict.ok or not verdict.retry:
                return answer
            last = answer
            if not await self._wait_to_retry(call, attempt, verdict):
                break
        return last or Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT)

    def _attempt_limit(self, call: Call) -> float:
        limit = call.remaining()
        if self.retry.attempt_timeout_s is not None:
            limit = min(limit, self.retry.attempt_timeout_s)
        return limit

    def _settle(self, grant: Grant, tokens: int | None, counted: bool) -> None:
        if self.scheduler is not None:
            self.scheduler.settle(grant, tokens, counted)

    def _learn(self, lease: Lease, model: str, verdict: Verdict) -> None:
        """A 429 that names its limit corrects the gateway's view of that limit."""
        if verdict.violation:
            self.limits.learn(lease.project.name, model, verdict.violation)

    def finish_stream(self, answer: Answer, verdict: Verdict, tail: bytes) -> None:
        """Returns a stream's key and settles its reservation with the usage its last chunk
        reported."""
        answer.usage = find_usage(tail)
        if answer.lease is not None:
            self.pool.release(answer.lease, verdict)
        if answer.grant is not None:
            self._settle(answer.grant, _prompt_tokens(answer.usage), counted=True)

    async def _wait_to_retry(self, call: Call, attempt: int, verdict: Verdict) -> bool:
        """Backs off before another attempt (not when it goes elsewhere at once); False when
        the retry budget or the deadline is spent."""
        if attempt >= self.retry.attempts or call.remaining() <= 0:
            return False
        if not verdict.elsewhere:
            pause = self._backoff(attempt)
            if pause >= call.remaining():
                return False
            await asyncio.sleep(pause)
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so retrying clients do not move in step."""
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _no_key(self, call: Call, last: Answer | None, quota_error: bytes) -> Answer:
        soonest = self.pool.soonest_recovery(call.model)
        if soonest is not None:
            return Answer(429, gateway_problem=ProblemId.ALL_PROJECTS_COOLING,
                          retry_after_s=soonest, quota_error=quota_error)
        if last is not None and last.verdict is not None and last.verdict.action == "none":
            return last
        why = self.pool.why_unusable()
        if why is None:
            return Answer(503, gateway_problem=ProblemId.NO_HEALTHY_KEYS)
        return Answer(503, gateway_problem=ProblemId.NO_HEALTHY_KEYS, cause=why[1],
                      message=f"No upstream key is available: {why[0]}.")

    async def _attempt(self, call: Call, lease: Lease) -> tuple[Answer, Verdict]:
        started = time.perf_counter()
        status = 0
        try:
            async with asyncio.timeout(max(0.001, self._attempt_limit(call))):
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
        self._attempted(call, Attempt(lease.project.name, lease.key.masked, status,
                                      verdict.problem, (time.perf_counter() - started) * 1000))
        return answer, verdict

    def _attempted(self, call: Call, attempt: Attempt) -> None:
        call.attempts.append(attempt)
        self.events.emit(call, AttemptMade(attempt.project, attempt.masked_key, attempt.status,
                                           attempt.problem, attempt.upstream_ms,
                                           attempt.provider))

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
            verdict = classify(_status_of(body), body) if body else NETWORK_FAILURE
            status = _status_of(body) or 502
            return Answer(status, [("content-type", "application/json; charset=UTF-8")], body,
                          verdict=verdict, gateway_problem=None if body else
                          ProblemId.UPSTREAM_UNREACHABLE), verdict
        answer = Answer(200, response_headers(upstream, lease.key.secret), stream=stream,
                        first_chunk=first, lease=lease, secret=lease.key.secret)
        return answer, classify(200, b"")


def _own_fault(verdict: Verdict) -> bool:
    return verdict.action in ("disable_key", "disable_project")


def _error_json(raw: bytes) -> bytes:
    """The error object inside an SSE event or a JSON-array stream, as a plain JSON body."""
    text = raw.strip()
    if text.startswith(b"data: "):
        text = text[6:].split(b"\n", 1)[0].strip()
    if text.startswith(b"["):
        text = text[1:].rstrip(b"]").strip()
    return text


def _status_of(body: bytes) -> int:
    code = error_of(body).get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else 0
