"""The pipeline: one request, one way, through an ordered list of named stages.

    auth → read → decode → route → rights → owners → guardrails → cache → relay

Each stage takes the Call and either passes it on or refuses it. `decode` is the surface's own
(Gemini's path and JSON checks, an OpenAI body checked and translated to Gemini's, an upload
start's path); every other stage is the same for every surface, so an OpenAI request or an
upload is scheduled, limited, walled, retried and billed exactly like a native one. The
pipeline also owns the way back: the Finished event (access log, ledger) for a whole answer or
a refusal before `run` returns, and a stream's whole life through `StreamRun`. Every stage
reports to `Events`.

No web framework's types come past the edge: an edge hands an `Inbound` and a decoder in, and
gets an `Outcome` back to encode in its wire format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gemgate.cache.stage import ResponseCache
from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.events import Events, Finished, StageEntered
from gemgate.core.refusal import Refusal, refusal
from gemgate.pipeline.auth import Authenticator
from gemgate.pipeline.batches import BatchResults
from gemgate.pipeline.cache_storage import CacheStorageMeter
from gemgate.pipeline.charges import AnswerWatcher
from gemgate.pipeline.guard import MODEL_ACTIONS
from gemgate.pipeline.guardrails import Guardrails, restored, stream_restorer
from gemgate.pipeline.idempotency import Idempotency
from gemgate.pipeline.inbound import BodyProblem, Inbound
from gemgate.pipeline.interactions import InteractionMeter
from gemgate.pipeline.listing import listing
from gemgate.pipeline.relay import Relay
from gemgate.pipeline.rights import Rights
from gemgate.pipeline.route import Router
from gemgate.pipeline.streams import StreamRun
from gemgate.problems import ProblemId
from gemgate.upstream.affinity import ResourceOwners, collection, single
from gemgate.upstream.client import forwardable

Decoder = Callable[[Call], Awaitable[Refusal | None]]
STAGES = ("auth", "read", "decode", "route", "rights", "owners", "guardrails", "cache",
          "relay")
_ENTERED = {stage: StageEntered(stage) for stage in STAGES}  # made once: they never change


@dataclass(slots=True)
class Outcome:
    """What the edge encodes: a refusal, or an answer — whole, or a stream to relay."""

    refusal: Refusal | None = None
    answer: Answer | None = None
    stream: StreamRun | None = None


def _deadline_s(asked: str | None, default: float) -> float:
    """The client's X-Server-Timeout (seconds) when shorter than the gateway's own deadline."""
    try:
        seconds = float(asked) if asked else default
    except ValueError:
        return default
    # Zero, negative or NaN would make every call a deadline failure of the gateway's: ignored.
    return min(default, seconds) if seconds > 0 else default


class Pipeline:
    def __init__(self, auth: Authenticator, router: Router, rights: Rights, relay: Relay,
                 owners: ResourceOwners, events: Events, deadline_s: float,
                 cache: ResponseCache | None = None,
                 idempotency: Idempotency | None = None,
                 storage: CacheStorageMeter | None = None,
                 guardrails: Guardrails | None = None) -> None:
        self.auth, self.router, self.rights, self.relay = auth, router, rights, relay
        self.owners, self.events = owners, events
        # Each looks at a successful resource call's answer for what Google bills or makes
        # beyond it (pipeline/charges.py): a batch's results, an interaction, a cache's hours.
        self.watchers: list[AnswerWatcher] = [BatchResults(owners), InteractionMeter(owners)]
        if storage is not None:
            self.watchers.append(storage)
        self.deadline_s = deadline_s
        self.cache = cache
        self.idempotency = idempotency
        self.guardrails = guardrails

    def new_call(self, inbound: Inbound, request_id: str, surface: str = "gemini") -> Call:
        headers = inbound.headers
        call = Call(request_id=request_id, method=inbound.method, version=inbound.version,
                    path=inbound.path, query=inbound.query,
                    headers={k: v for k, v in headers.items() if forwardable(k)}, body=b"",
                    lang=inbound.lang, surface=surface)
        call.deadline = call.started + _deadline_s(headers.get("X-Server-Timeout"),
                                                   self.deadline_s)
        call.client_ip = inbound.client_ip
        call.asked_priority = headers.get("x-gemgate-priority")
        call.asked_fallback = headers.get("x-gemgate-fallback", "")
        call.asked_cache = headers.get("x-gemgate-cache", "")
        call.cache_control = headers.get("Cache-Control", "")
        call.idempotency_key = headers.get("Idempotency-Key")
        return call

    # ---- the way in ---------------------------------------------------------------------

    async def run(self, call: Call, inbound: Inbound, decode: Decoder) -> Outcome:
        """Runs the stages in order; a refusal or a whole answer is recorded before this
        returns, a stream when the edge leaves its StreamRun."""
        refused = await self._admit(call, inbound, decode)
        if refused is not None:
            await self.events.finished(call, Finished(refused.status, refused.problem, None))
            return Outcome(refusal=refused)
        if self.idempotency is not None and call.idempotency_key is not None:
            once = await self.idempotency.begin(call)
            if isinstance(once, Answer):
                return await self._outcome(call, once)  # the first call's answer, again
            if once is not None:
                refused = refusal(once)
                await self.events.finished(call, Finished(refused.status, once, None))
                return Outcome(refusal=refused)
        self._entered(call, "cache")
        cached = await self.cache.lookup(call) if self.cache is not None else None
        if cached is not None:
            return await self._outcome(call, cached)
        self._entered(call, "relay")
        try:
            answer = await self._forward(call)
        except BaseException:
            if self.cache is not None:  # identical calls waiting on this one go on alone
                await self.cache.keep_stream(call, None, None)
            raise
        if self.cache is not None and call.cache_plan is not None and answer.stream is None:
            await self.cache.keep_whole(call, answer)
        if call.idempotency is not None and self.idempotency is not None:
            await self.idempotency.finish(call, answer)
        return await self._outcome(call, answer)

    async def _outcome(self, call: Call, answer: Answer) -> Outcome:
        """The way back: a stream handed out in its run, a whole answer recorded."""
        if answer.stream is not None:
            call.first_byte_ms = call.elapsed_ms()
            keep = self.cache.keep_stream if self.cache is not None and \
                call.cache_plan is not None and call.cache in ("MISS", "REFRESH") else None
            limit = self.cache.config.max_entry_bytes if self.cache is not None else 0
            return Outcome(answer=answer, stream=StreamRun(call, answer,
                                                           self.relay.finish_stream,
                                                           self.events, keep, limit,
                                                           stream_restorer(call)))
        ok = 200 <= answer.status < 300
        await self.events.finished(call, Finished(answer.status, None if ok else answer.problem,
                                                  answer.usage if ok else None))
        return Outcome(answer=restored(call, answer) if call.guarded is not None else answer)

    async def _admit(self, call: Call, inbound: Inbound, decode: Decoder) -> Refusal | None:
        self._entered(call, "auth")
        call.tenant, problem = self.auth.authenticate(inbound.token, inbound.client_ip)
        if problem is not None:
            return refusal(problem)
        self._entered(call, "read")
        try:
            call.body = await inbound.read_body()
        except BodyProblem as exc:
            return refusal(exc.problem)
        self._entered(call, "decode")
        refused = await decode(call)
        if refused is not None:
            return refused
        self._entered(call, "route")
        problem = self.router.route(call)
        if problem == ProblemId.MODEL_NAME_INVALID:
            return refusal(problem, f"Model name {call.refused_model[:200]!r} is not a valid "
                                    "model id.")
        if problem is not None:
            return refusal(problem)
        self._entered(call, "rights")
        refused = await self.rights.check(call)
        if refused is not None:
            return refused
        self._entered(call, "owners")
        if not await self.owners.check(call):  # another tenant's resource is no resource at all
            return refusal(ProblemId.RESOURCE_NOT_FOUND)
        if self.guardrails is not None:
            self._entered(call, "guardrails")
            return self.guardrails.check(call)
        return None

    def _entered(self, call: Call, stage: str) -> None:
        if self.events.wants(StageEntered):
            self.events.emit(call, _ENTERED[stage])

    async def _forward(self, call: Call) -> Answer:
        """The relay (or a list gathered over projects); a successful create or delete
        updates who owns what."""
        if call.local is not None:
            return call.local
        kind = collection(call)
        if kind is not None:
            return await listing(self.relay, self.owners, call, kind)
        answer = await self.relay.forward(call)
        if 200 <= answer.status < 300 and answer.stream is None and call.attempts and \
                call.tenant is not None and call.action not in MODEL_ACTIONS:
            for watcher in self.watchers:
                await watcher.seen(call, answer)
            if call.method == "POST":
                await self.owners.created(call.tenant.id, answer.body,
                                          call.attempts[-1].project)
            elif call.method == "DELETE" and (name := single(call)) is not None:
                await self.owners.deleted(name)
        return answer
