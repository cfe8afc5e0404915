"""The relay stage: one retry loop over upstream adaptors, until an answer is worth passing on
or the deadline is spent.

For each model of the call's chain (the model asked, then its fallbacks), the loop asks the
link's upstream to `pick` (Google: room in a project's quota, then a key of it; a provider: its
next key not resting), to `attempt` one call, and to `release` what the attempt revealed. The
loop itself only decides: stop on success or on an answer no retry can change, count the retry
budget, back off (not when the next attempt goes elsewhere at once), and move to the next link
when the outcome says another model or provider may do better. A Google attempt may be hedged
(pipeline/hedging.py: a second project asked when the first is slow; off by default).
Retries happen only before the first byte reaches the client: a stream is returned with its
first chunk already read, so an upstream that fails at once is retried like any other error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gemgate.access.counters import KeyCounters
from gemgate.config import HedgingConfig, RetryConfig
from gemgate.core.answer import Answer
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import Verdict
from gemgate.core.events import AttemptMade, Events, FellBack
from gemgate.pipeline.google import GoogleUpstream
from gemgate.pipeline.hedging import Hedger
from gemgate.pipeline.provider import ProviderUpstream
from gemgate.pipeline.route import Router
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId, may_fall_back
from gemgate.upstream.providers import Providers

Sleep = Callable[[float], Awaitable[None]]  # asyncio.sleep, or a test's fake clock's


class Upstream(Protocol):
    """What the loop drives: Google's pool, or an OpenAI-compatible provider."""

    async def pick(self, call: Call, tries: Tries, patience: float) -> Any:
        """Something to attempt with (a key), or an Answer when there is none."""

    async def attempt(self, call: Call, pick: Any,
                      limit_s: float) -> tuple[Answer, Verdict, Attempt]: ...

    async def release(self, call: Call, pick: Any, answer: Answer, verdict: Verdict,
                      tries: Tries) -> None: ...


class Relay:
    def __init__(self, google: GoogleUpstream, retry: RetryConfig, router: Router,
                 fallback_after_s: float, providers: Providers, events: Events,
                 sleep: Sleep = asyncio.sleep, counters: KeyCounters | None = None,
                 hedging: HedgingConfig | None = None) -> None:
        self.google, self.retry, self.router = google, retry, router
        self.hedger = Hedger(hedging, google) if hedging is not None and hedging.enabled \
            else None
        self.counters = counters  # a virtual key's windows, for provider links
        self.fallback_after_s = fallback_after_s
        self.providers, self.events = providers, events
        self.pool = google.pool
        self._sleep = sleep

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
            answer = await self.through(call, self._upstream_for(model), patience)
            if last_link or not may_fall_back(answer.problem) or call.remaining() <= 0:
                return answer
        return answer

    def _upstream_for(self, model: str) -> Upstream:
        link = self.providers.link(model) if self.providers else None
        if link is None:
            return self.google
        return ProviderUpstream(self.providers, link, self.providers.clock, self.counters)

    async def through(self, call: Call, upstream: Upstream, patience: float) -> Answer:
        """The one retry loop, whatever the upstream."""
        tries = Tries()
        while tries.spent < self.retry.attempts:
            pick = await upstream.pick(call, tries, min(patience, call.remaining()))
            if isinstance(pick, Answer):
                return pick
            if self.hedger is not None and upstream is self.google and \
                    self.hedger.applies(call):
                answer, verdict, attempt = await self.hedger.attempt(
                    call, pick, tries, self._attempt_limit(call))
            else:
                answer, verdict, attempt = await upstream.attempt(call, pick,
                                                                  self._attempt_limit(call))
            call.attempts.append(attempt)
            if self.events.wants(AttemptMade):
                self.events.emit(call, AttemptMade(attempt.project, attempt.masked_key,
                                                   attempt.status, attempt.problem,
                                                   attempt.upstream_ms, attempt.provider))
            tries.count(verdict)
            await upstream.release(call, pick, answer, verdict, tries)
            if verdict.ok or not verdict.retry or tries.give_up_on(answer):
                return answer
            tries.remember(answer, verdict)
            if not await self._wait_to_retry(call, tries.spent, verdict):
                break
        return tries.last or Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT)

    async def finish_stream(self, answer: Answer, verdict: Verdict, tail: bytes) -> None:
        """A stream is over: its key returned, its reservation settled (Google's streams;
        a provider's hold neither)."""
        await self.google.finish_stream(answer, verdict, tail)

    def _attempt_limit(self, call: Call) -> float:
        limit = call.remaining()
        if self.retry.attempt_timeout_s is not None:
            limit = min(limit, self.retry.attempt_timeout_s)
        return limit

    async def _wait_to_retry(self, call: Call, attempt: int, verdict: Verdict) -> bool:
        """Backs off before another attempt (not when it goes elsewhere at once); False when
        the retry budget or the deadline is spent."""
        if attempt >= self.retry.attempts or call.remaining() <= 0:
            return False
        if not verdict.elsewhere:
            pause = self._backoff(attempt)
            if pause >= call.remaining():
                return False
            await self._sleep(pause)
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so retrying clients do not move in step."""
        ceiling = min(self.retry.max_delay_s, self.retry.base_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)
