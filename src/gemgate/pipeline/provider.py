"""An OpenAI-compatible provider as an upstream of the relay's loop (see pipeline/relay.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gemgate.access.counters import KeyCounters
from gemgate.core.answer import Answer
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import TIMEOUT, Verdict
from gemgate.pipeline.rights import over_own_limit
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId
from gemgate.upstream.client import NETWORK_ERRORS
from gemgate.upstream.providers import Link, ProviderKey, Providers

_PROVIDER_DOWN = Verdict(ProblemId.PROVIDER_UNAVAILABLE, retry=True, reason="connection failed")


class ProviderUpstream:
    """One `<provider>/<model>` link as an upstream of the relay's loop: its keys in turn
    (a refused or rate-limited key rests), one attempt at a time."""

    def __init__(self, providers: Providers, link: Link,
                 clock: Callable[[], float] = time.monotonic,
                 counters: KeyCounters | None = None) -> None:
        self.providers, self.link, self.clock = providers, link, clock
        self.counters = counters

    async def pick(self, call: Call, tries: Tries, patience: float) -> ProviderKey | Answer:
        if call.action not in ("generateContent", "streamGenerateContent"):
            return Answer(400, gateway_problem=ProblemId.PROVIDER_UNSUPPORTED)
        refused = await self._key_windows(call)
        if refused is not None:
            return refused
        provider = self.link.provider
        key = provider.next_key(self.clock())
        if key is None:
            return tries.last or Answer(429, gateway_problem=ProblemId.PROVIDER_KEYS_RESTING,
                                        retry_after_s=provider.soonest(self.clock()))
        return key

    async def _key_windows(self, call: Call) -> Answer | None:
        """A key whose windows were left to admission (which a provider does not pass
        through) is counted here, once per call."""
        key = call.tenant.key if call.tenant is not None else None
        if call.key_scope is None or key is None or self.counters is None:
            return None
        call.key_scope = None
        wait, call.key_tokens = await self.counters.admit(key, call.estimated_tokens or 0)
        if wait <= 0:
            return None
        refused = over_own_limit(key, wait)
        return Answer(429, gateway_problem=refused.problem, retry_after_s=wait,
                      message=refused.message)

    async def attempt(self, call: Call, key: ProviderKey,
                      limit_s: float) -> tuple[Answer, Verdict, Attempt]:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(max(0.001, limit_s)):
                answer, verdict = await self.providers.attempt(call, self.link, key)
        except TimeoutError:
            verdict = TIMEOUT
            answer = Answer(504, gateway_problem=ProblemId.UPSTREAM_TIMEOUT, verdict=verdict)
        except NETWORK_ERRORS:
            verdict = _PROVIDER_DOWN
            answer = Answer(502, gateway_problem=ProblemId.PROVIDER_UNAVAILABLE,
                            verdict=verdict)
        name = self.link.provider.name
        return answer, verdict, Attempt(name, key.masked, answer.status if
                                        answer.gateway_problem is None else 0, verdict.problem,
                                        (time.perf_counter() - started) * 1000, name)

    async def release(self, call: Call, key: ProviderKey, answer: Answer, verdict: Verdict,
                      tries: Tries) -> None:
        """Nothing to give back: a key's rest was set when its answer was read."""
