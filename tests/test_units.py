"""The core's decisions on a fake clock, in milliseconds: the relay's loop, the scheduler's
admission, the classifier. (The pool's are in test_pool_health.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from gemgate.config import ProjectConfig, RetryConfig, Settings
from gemgate.core.answer import Answer
from gemgate.core.call import Attempt, Call
from gemgate.core.classify import OK, Verdict, classify
from gemgate.core.events import AttemptMade, Event, Events
from gemgate.pipeline.google import GoogleUpstream
from gemgate.pipeline.relay import Relay
from gemgate.pipeline.route import Router
from gemgate.pipeline.tries import Tries
from gemgate.problems import ProblemId
from gemgate.scheduling.limits import LimitBook
from gemgate.scheduling.scheduler import Ask, Grant, NoRoom, Scheduler
from gemgate.state.memory import MemoryRateState
from gemgate.upstream.pool import KeyPool
from gemgate.upstream.providers import Providers

OVERLOADED = Verdict(ProblemId.MODEL_OVERLOADED, retry=True)
INTERNAL = Verdict(ProblemId.UPSTREAM_INTERNAL, retry=True)
BAD_KEY = Verdict(ProblemId.API_KEY_INVALID, "disable_key", retry=True, elsewhere=True)
QUOTA = Verdict(ProblemId.QUOTA_EXHAUSTED, "cool_project", retry=True, elsewhere=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """An upstream that answers from a script: (status, verdict) per attempt."""

    def __init__(self, script: list[tuple[int, Verdict]]) -> None:
        self.script = list(script)
        self.released: list[Verdict] = []

    async def pick(self, call: Call, tries: Tries, patience: float) -> Any:
        return "key" if self.script else Answer(503, gateway_problem=ProblemId.NO_HEALTHY_KEYS)

    async def attempt(self, call: Call, pick: Any,
                      limit_s: float) -> tuple[Answer, Verdict, Attempt]:
        status, verdict = self.script.pop(0)
        return (Answer(status, verdict=verdict),
                verdict, Attempt("p", "k…ey", status, verdict.problem, 1.0))

    async def release(self, call: Call, pick: Any, answer: Answer, verdict: Verdict,
                      tries: Tries) -> None:
        self.released.append(verdict)


def _relay(attempts: int = 5) -> tuple[Relay, list[float], list[Event]]:
    sleeps: list[float] = []
    seen: list[Event] = []
    events = Events()
    events.subscribe(lambda call, event: seen.append(event))

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    settings = Settings()
    pool = KeyPool([ProjectConfig(name="p", keys=["key-000001"])])
    google = GoogleUpstream(pool, None, None, LimitBook({}, {}), events)  # type: ignore[arg-type]
    relay = Relay(google, RetryConfig(attempts=attempts, base_delay_s=0.1, max_delay_s=1),
                  Router(settings), 1.0, Providers([], lambda proxy: None, 1, 1),  # type: ignore[arg-type]
                  events, sleep)
    return relay, sleeps, seen


def _call() -> Call:
    call = Call("r1", "POST", "v1beta", "models/m:generateContent", "", {}, b"{}")
    call.deadline = call.started + 60
    return call


def _through(relay: Relay, upstream: Scripted) -> Answer:
    return asyncio.run(relay.through(_call(), upstream, 60))


def test_the_loop_retries_transient_failures_with_backoff_then_succeeds() -> None:
    relay, sleeps, seen = _relay()
    upstream = Scripted([(503, OVERLOADED), (503, OVERLOADED), (200, OK)])
    assert _through(relay, upstream).status == 200
    assert len(sleeps) == 2 and all(0 <= s <= 1 for s in sleeps)
    assert [e.status for e in seen if isinstance(e, AttemptMade)] == [503, 503, 200]
    assert upstream.released == [OVERLOADED, OVERLOADED, OK]


def test_the_budget_counts_every_attempt_but_a_keys_own_fault() -> None:
    relay, sleeps, _ = _relay(attempts=2)
    script = [(400, BAD_KEY), (400, BAD_KEY), (503, OVERLOADED), (503, OVERLOADED), (200, OK)]
    answer = _through(relay, Scripted(script))
    assert answer.status == 503  # two counted failures spend a budget of two
    assert sleeps == [sleeps[0]]  # bad keys go elsewhere at once; one backoff between 503s


def test_a_second_500_ends_the_tries_and_a_429_goes_elsewhere_at_once() -> None:
    relay, sleeps, _ = _relay()
    assert _through(relay, Scripted([(500, INTERNAL), (500, INTERNAL), (200, OK)])).status == 500
    relay, sleeps, _ = _relay()
    assert _through(relay, Scripted([(429, QUOTA), (200, OK)])).status == 200
    assert sleeps == []


def test_no_key_left_is_the_upstreams_answer() -> None:
    relay, _, _ = _relay()
    assert _through(relay, Scripted([])).problem == ProblemId.NO_HEALTHY_KEYS


def test_the_scheduler_admits_by_the_fake_clocks_minute() -> None:
    clock = FakeClock()
    pool = KeyPool([ProjectConfig(name="p", keys=["key-000001"],
                                  limits={})], clock=clock)
    limits = LimitBook({"p": "free"}, {"p": {"m": {"rpm": 2, "tpm": None, "rpd": None}}})
    scheduler = Scheduler(MemoryRateState(60.0, 0.5, 86400.0, clock), limits, pool)
    ask = Ask("m", 10)

    def try_now() -> tuple[object, float]:
        return asyncio.run(scheduler.try_now(ask))

    first, _ = try_now()
    second, _ = try_now()
    third, wait = try_now()
    assert isinstance(first, Grant) and isinstance(second, Grant) and third is None
    assert 60 <= wait <= 62  # a minute, its margin, and one bucket (1/60 of it) at most
    clock.now += wait
    fourth, _ = try_now()
    assert isinstance(fourth, Grant)
    pool.cool(pool.projects[0], 30, "429", "m")
    cooling, wait = try_now()
    assert cooling is None and 29 <= wait <= 30
    pool.projects[0].keys[0].disabled_reason = "invalid"
    refused, _ = try_now()
    assert isinstance(refused, NoRoom) and refused.problem == ProblemId.NO_HEALTHY_KEYS


def test_the_classifier_reads_googles_answers() -> None:
    invalid = (b'{"error": {"code": 400, "message": "API key not valid.", "status": '
               b'"INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.'
               b'ErrorInfo", "reason": "API_KEY_INVALID"}]}}')
    assert classify(400, invalid).action == "disable_key"
    quota = (b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "q", '
             b'"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
             b'"retryDelay": "7s"}]}}')
    verdict = classify(429, quota)
    assert verdict.action == "cool_project" and verdict.cooldown_s == 7 and verdict.elsewhere
    assert classify(503, b"").problem == ProblemId.MODEL_OVERLOADED and \
        classify(503, b"").retry
    assert classify(400, b'{"error": {"code": 400, "message": "bad"}}').retry is False
    assert classify(200, b"{}").ok


def test_learnt_limits_and_resting_provider_keys_are_told_and_adopted() -> None:
    from gemgate.config import ProviderConfig
    from gemgate.core.events import LimitLearnt, ProviderRested
    from gemgate.secrets import key_id
    from gemgate.state import Limits

    told: list[object] = []
    book = LimitBook({"p": "free"}, {})
    book.on_learn = told.append
    learnt = book.learn("p", "gemini-2.5-flash", {
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaValue": "3"})
    assert learnt is not None and learnt.rpm == 3
    assert told == [LimitLearnt("p", "gemini-2.5-flash", 3, learnt.tpm, learnt.rpd)]
    other = LimitBook({"p": "free"}, {})
    other.adopt("p", "gemini-2.5-flash", Limits(3, learnt.tpm, learnt.rpd))
    assert other.of("p", "gemini-2.5-flash").rpm == 3

    providers = Providers([ProviderConfig(name="backup", base_url="http://127.0.0.1:9",
                                          keys=["provider-key-0001"])],
                          lambda proxy: None, 1, 1)
    providers.apply(ProviderRested("backup", key_id("provider-key-0001"), 60))
    link = providers.link("backup/model")
    import time as clock
    assert link is not None and link.provider.next_key(clock.monotonic()) is None  # as told
    assert link.provider.next_key(clock.monotonic() + 61) is not None  # and back after it


def test_slots_are_bounded_and_a_dead_holders_lease_runs_out() -> None:
    import asyncio

    from gemgate.state.slots import LEASE_S, MemorySlots

    now = [0.0]
    slots = MemorySlots(lambda: now[0])

    async def run() -> None:
        assert await slots.take("p", "a", 2) and await slots.take("p", "b", 2)
        assert not await slots.take("p", "c", 2) and await slots.take("p", "a", 2)  # held
        now[0] = LEASE_S - 1
        await slots.renew("p", "a")  # "b" stops renewing: its holder died
        now[0] = LEASE_S + 1
        assert await slots.count("p") == 1 and await slots.take("p", "c", 2)
        await slots.give("p", "a")
        assert await slots.count("p") == 1

    asyncio.run(run())


def test_live_usage_is_summed_by_modality_and_audio_priced_as_audio() -> None:
    from gemgate.prices import PriceBook, Tokens
    from gemgate.usage import add_usage, modalities_of

    usage: dict[str, Any] = {}
    add_usage(usage, {"promptTokenCount": 10, "responseTokenCount": 4,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
                      "responseTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]})
    assert modalities_of(usage) is None  # all text: nothing stored
    add_usage(usage, {"promptTokenCount": 1000, "responseTokenCount": 1000,
                      "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 1000}],
                      "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 1000}]})
    assert modalities_of(usage) == "in TEXT 10 AUDIO 1000; out TEXT 4 AUDIO 1000"
    cost = PriceBook().cost("gemini-2.5-flash-native-audio-preview", Tokens.of(usage))
    # text in 10 × $0.50, audio in 1000 × $3, text out 4 × $2, audio out 1000 × $12 (per 1M)
    assert cost == round((10 * 0.5 + 1000 * 3 + 4 * 2 + 1000 * 12) / 1e6, 9)
