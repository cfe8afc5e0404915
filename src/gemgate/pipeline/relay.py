"""The relay stage: pick a key, call Google, and retry or fail over until an answer is worth
passing on or the deadline is spent.

Retries happen only before the first byte reaches the client: a stream is returned with its
first chunk already read, so an upstream that fails at once is retried like any other error.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp

from gemgate.config import RetryConfig
from gemgate.pipeline.call import Attempt, Call
from gemgate.secrets import scrub
from gemgate.upstream.classify import NETWORK_FAILURE, TIMEOUT, Verdict, classify
from gemgate.upstream.client import NETWORK_ERRORS, UpstreamClient
from gemgate.upstream.pool import KeyPool, Lease


@dataclass(slots=True)
class Answer:
    """What goes back to the client: a whole body, or an open upstream stream to pipe."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: aiohttp.ClientResponse | None = None
    first_chunk: bytes = b""
    lease: Lease | None = None  # held until a stream ends, so in-flight counts stay true
    verdict: Verdict | None = None  # why an upstream error is being passed on
    gateway_problem: str | None = None  # gemgate's own refusal (all cooling, no keys, deadline)
    retry_after_s: float | None = None
    quota_error: bytes = b""  # the last upstream 429, whose QuotaFailure explains a refusal


_ERROR_STARTS = (b'data: {"error"', b'[{"error"', b'{"error"')
# Response headers that belong to one hop, or that aiohttp sets itself.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                          "server", "date", "alt-svc", "content-encoding"})


def response_headers(upstream: aiohttp.ClientResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS]


class Relay:
    def __init__(self, pool: KeyPool, client: UpstreamClient, retry: RetryConfig) -> None:
        self.pool = pool
        self.client = client
        self.retry = retry

    async def forward(self, call: Call) -> Answer:
        last: Answer | None = None
        quota_error = b""
        for attempt in range(1, self.retry.attempts + 1):
            lease = self.pool.acquire(only=call.affinity)
            if lease is None:
                return self._no_key(call, last, quota_error)
            answer, verdict = await self._attempt(call, lease)
            if answer.stream is None:
                self.pool.release(lease, verdict)
            if verdict.ok or not verdict.retry:
                return answer
            if verdict.problem == "QUOTA_EXHAUSTED":
                quota_error = answer.body
            last = answer
            if attempt == self.retry.attempts or call.remaining() <= 0:
                break
            if not verdict.elsewhere:
                pause = self._backoff(attempt)
                if pause >= call.remaining():
                    break
                await asyncio.sleep(pause)
        return last if last is not None else Answer(504, gateway_problem="UPSTREAM_TIMEOUT")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so retrying clients do not move in step."""
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _no_key(self, call: Call, last: Answer | None, quota_error: bytes) -> Answer:
        soonest = self.pool.soonest_recovery()
        if soonest is not None:
            return Answer(429, gateway_problem="ALL_PROJECTS_COOLING", retry_after_s=soonest,
                          quota_error=quota_error)
        if last is not None and last.verdict is not None and last.verdict.action == "none":
            return last
        return Answer(503, gateway_problem="NO_HEALTHY_KEYS")

    async def _attempt(self, call: Call, lease: Lease) -> tuple[Answer, Verdict]:
        started = time.perf_counter()
        status = 0
        try:
            async with asyncio.timeout(max(0.001, call.remaining())):
                upstream = await self.client.send(call, lease)
                status = upstream.status
                if status == 200 and call.stream:
                    answer, verdict = await self._open_stream(upstream, lease)
                else:
                    body = await upstream.read()
                    upstream.release()
                    if status >= 300:  # from here on, what Google said is kept and shown
                        body = scrub(body, lease.key.secret)
                    verdict = classify(status, body)
                    answer = Answer(status, response_headers(upstream), body, verdict=verdict)
        except TimeoutError:
            verdict = TIMEOUT
            answer = Answer(504, gateway_problem="UPSTREAM_TIMEOUT", verdict=verdict)
        except NETWORK_ERRORS:
            verdict = NETWORK_FAILURE
            answer = Answer(502, gateway_problem="UPSTREAM_UNREACHABLE", verdict=verdict)
        call.attempts.append(Attempt(lease.project.name, lease.key.masked, status,
                                     verdict.problem, (time.perf_counter() - started) * 1000))
        return answer, verdict

    async def _open_stream(self, upstream: aiohttp.ClientResponse,
                           lease: Lease) -> tuple[Answer, Verdict]:
        """Reads the first chunk before committing: an empty stream or an immediate error
        event is an error like any other, and can still be retried."""
        try:
            first = await upstream.content.readany()
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
                          "UPSTREAM_UNREACHABLE"), verdict
        answer = Answer(200, response_headers(upstream), stream=upstream, first_chunk=first,
                        lease=lease)
        return answer, classify(200, b"")


def _error_json(raw: bytes) -> bytes:
    """The error object inside an SSE event or a JSON-array stream, as a plain JSON body."""
    text = raw.strip()
    if text.startswith(b"data: "):
        text = text[6:].split(b"\n", 1)[0].strip()
    if text.startswith(b"["):
        text = text[1:].rstrip(b"]").strip()
    return text


def _status_of(body: bytes) -> int:
    from gemgate.upstream.classify import error_of

    code = error_of(body).get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else 0
