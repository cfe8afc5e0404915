"""An OpenAI-compatible provider as an upstream of the relay's loop (see pipeline/relay.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gemgate.core.answer import Answer
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import TIMEOUT, Verdict
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId
from gemgate.upstream.client import NETWORK_ERRORS
from gemgate.upstream.providers import Link, ProviderKey, Providers

_PROVIDER_DOWN = Verdict(ProblemId.PROVIDER_UNAVAILABLE, retry=True, reason="connection failed")


class ProviderUpstream:
    """One `<provider>/<model>` link as an upstream of the relay's loop: its keys in turn
    (a refused or rate-limited key rests), one attempt at a time."""

    def __init__(self, providers: Providers, link: Link,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.providers, self.link, self.clock = providers, link, clock

    async def pick(self, call: Call, tries: Tries, patience: float) -> ProviderKey | Answer:
        if call.action not in ("generateContent", "streamGenerateContent"):
            return Answer(400, gateway_problem=ProblemId.PROVIDER_UNSUPPORTED)
        provider = self.link.provider
        key = provider.next_key(self.clock())
        if key is None:
            return tries.last or Answer(429, gateway_problem=ProblemId.PROVIDER_KEYS_RESTING,
                                        retry_after_s=provider.soonest(self.clock()))
        return key

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
