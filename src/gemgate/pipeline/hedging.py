"""Hedged requests: when a call's first attempt is slower than the model's recent p95, a second
attempt goes to another project; the first good answer wins and the other is cancelled.

Why: a few slow answers (Google's tail, one project's bad minute) set a gateway's p99; a second
attempt after the p95 costs at most ~5% more calls and cuts that tail to about p95 + one fast
call (measured in docs/benchmarks.md: `python -m bench.hedging`).

Rules that keep it honest:
- only non-streaming calls of the configured actions and models (`hedging:`), off by default;
- the second attempt needs quota room *now* in another project (the scheduler's admission with
  no patience): a hedge never queues, never overruns a window and never takes the same project;
- at most `max_extra_share` hedges per call seen (a slow Google must not double the load);
- both attempts are metered: the loser's is in the call's attempts (`HEDGE_CANCELLED` when it
  was cancelled) and its tokens — what it answered, or its prompt's estimate when cancelled
  (Google had the request) — are added to the call's billed usage; the client's own answer and
  its usageMetadata are the winner's, untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from gemgate.config import HedgingConfig
from gemgate.core.answer import Answer
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import Verdict
from gemgate.core.events import AttemptMade
from gemgate.pipeline.google import GooglePick, GoogleUpstream
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId

_WINDOW = 500  # recent successful latencies kept per model
_RECOMPUTE_EVERY = 25  # observations between two sorts of the window (~20 µs each)
_SHARE_WINDOW = 1000  # calls over which the hedge share is counted
Outcome = tuple[Answer, Verdict, Attempt]


class LatencyWatch:
    """The recent latencies of each model's successful calls, and their percentile."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._seen: dict[str, deque[float]] = {}
        self._threshold: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def observe(self, model: str, seconds: float) -> None:
        seen = self._seen.get(model)
        if seen is None:
            seen = self._seen[model] = deque(maxlen=_WINDOW)
        seen.append(seconds)
        self._since[model] = self._since.get(model, 0) + 1

    def threshold(self, model: str, min_samples: int) -> float | None:
        seen = self._seen.get(model)
        if seen is None or len(seen) < min_samples:
            return None
        if model not in self._threshold or self._since[model] >= _RECOMPUTE_EVERY:
            self._since[model] = 0
            ordered = sorted(seen)
            self._threshold[model] = ordered[min(len(ordered) - 1,
                                                 int(self.share * len(ordered)))]
        return self._threshold[model]


class Hedger:
    def __init__(self, config: HedgingConfig, google: GoogleUpstream) -> None:
        self.config, self.google = config, google
        self.watch = LatencyWatch(config.percentile)
        self._calls = self._hedges = 0
        self._models = tuple(config.models)
        self._actions = frozenset(config.actions)

    def applies(self, call: Call) -> bool:
        return (self.config.enabled and not call.stream and call.action in self._actions
                and (not self._models or call.model.startswith(self._models)))

    async def attempt(self, call: Call, pick: GooglePick, tries: Tries,
                      limit_s: float) -> Outcome:
        """The call's attempt, hedged when it runs past the model's recent percentile; the
        loser (if any) is already released and recorded when this returns."""
        self._count_call()
        begun = time.perf_counter()
        first = asyncio.ensure_future(self.google.attempt(call, pick, limit_s))
        try:
            delay = self.watch.threshold(call.model, self.config.min_samples)
            if delay is not None and self._may_hedge():
                done, _ = await asyncio.wait({first},
                                             timeout=max(delay, self.config.min_delay_s))
                if not done:
                    second = await self._second_pick(call, pick, tries)
                    if second is not None:
                        self._hedges += 1
                        return await self._race(call, (first, pick), second, tries, limit_s,
                                                begun)
            outcome = await first
        except asyncio.CancelledError:
            first.cancel()  # the call is being torn down: its attempt goes with it, as unhedged
            raise
        self._learn(call, outcome)
        return outcome

    def _count_call(self) -> None:
        self._calls += 1
        if self._calls >= _SHARE_WINDOW:
            self._calls = self._hedges = 0

    def _may_hedge(self) -> bool:
        return self._hedges < self.config.max_extra_share * max(self._calls, 1)

    async def _second_pick(self, call: Call, first: GooglePick,
                           tries: Tries) -> GooglePick | None:
        """A key in another project with quota room now, or None (no hedge then)."""
        elsewhere = Tries(excluded=tries.excluded | {first.lease.project.name},
                          tried=set(tries.tried))
        pick = await self.google.pick(call, elsewhere, 0.0)
        if isinstance(pick, Answer):
            return None
        if pick.lease.project is first.lease.project:  # scheduling off: the pool chose it
            await self._give_back(pick, counted=False)
            return None
        return pick

    async def _race(self, call: Call, first: tuple[asyncio.Future[Outcome], GooglePick],
                    second_pick: GooglePick, tries: Tries, limit_s: float,
                    begun: float) -> Outcome:
        second = asyncio.ensure_future(self.google.attempt(call, second_pick, limit_s))
        started = {first[0]: begun, second: time.perf_counter()}
        picks: dict[asyncio.Future[Outcome], GooglePick] = {first[0]: first[1],
                                                             second: second_pick}
        try:
            winner, outcome, pending = await self._first_good(call, picks, tries)
        except asyncio.CancelledError:
            for task in picks:
                task.cancel()
            raise
        for task in pending:
            await self._cancel(call, task, picks[task], started[task])
        self._learn(call, outcome)
        # The relay releases the winner's pick: make it the one it holds.
        first[1].lease, first[1].grant = picks[winner].lease, picks[winner].grant
        return outcome

    async def _first_good(self, call: Call, picks: dict[asyncio.Future[Outcome], GooglePick],
                          tries: Tries) -> tuple[asyncio.Future[Outcome], Outcome,
                                                 set[asyncio.Future[Outcome]]]:
        """The first attempt to succeed (or the last to fail), and those still running; a
        failure while the other may still succeed, or a second success, is a loser."""
        pending = set(picks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            winner: tuple[asyncio.Future[Outcome], Outcome] | None = None
            for task in done:
                result = task.result()
                if winner is None and (result[1].ok or not pending):
                    winner = (task, result)
                else:
                    await self._loser(call, picks[task], result, tries)
            if winner is not None:
                return winner[0], winner[1], pending
        raise AssertionError("one of two attempts always ends the race")

    async def _loser(self, call: Call, pick: GooglePick, outcome: Outcome,
                     tries: Tries) -> None:
        """An attempt that finished but does not answer the call: recorded and billed."""
        answer, verdict, attempt = outcome
        self._record(call, attempt)
        await self.google.release(call, pick, answer, verdict, tries)
        _bill(call, answer.usage)

    async def _cancel(self, call: Call, task: asyncio.Future[Outcome], pick: GooglePick,
                      started: float) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        lease = pick.lease
        self._record(call, Attempt(lease.project.name, lease.key.masked, 0,
                                   ProblemId.HEDGE_CANCELLED,
                                   (time.perf_counter() - started) * 1000))
        await self._give_back(pick, counted=True)  # Google had the request: its quota counts
        _bill(call, {"promptTokenCount": call.estimated_tokens or 0,
                     "totalTokenCount": call.estimated_tokens or 0})

    async def _give_back(self, pick: GooglePick, counted: bool) -> None:
        """Returns a pick whose attempt said nothing about its key."""
        self.google.pool.give_back(pick.lease)
        if pick.grant is not None and self.google.scheduler is not None:
            await self.google.scheduler.settle(pick.grant, None, counted=counted)

    def _record(self, call: Call, attempt: Attempt) -> None:
        """A losing attempt in the call's attempts, and told like the relay tells its own."""
        call.attempts.append(attempt)
        events = self.google.events
        if events.wants(AttemptMade):
            events.emit(call, AttemptMade(attempt.project, attempt.masked_key, attempt.status,
                                          attempt.problem, attempt.upstream_ms))

    def _learn(self, call: Call, outcome: Outcome) -> None:
        if outcome[1].ok:
            self.watch.observe(call.model, outcome[2].upstream_ms / 1000)


def _bill(call: Call, usage: dict[str, Any] | None) -> None:
    """Adds a losing attempt's tokens to what the call is billed for (pipeline/meter.py)."""
    if not usage:
        return
    extra = call.hedge_usage = call.hedge_usage or {}
    for name in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
                 "totalTokenCount"):
        if isinstance(usage.get(name), int):
            extra[name] = extra.get(name, 0) + usage[name]
