"""OpenAI-compatible providers (DeepSeek, OpenRouter, a vLLM server, …) as the last links of
fallback chains and as aliases' targets, named `<provider>/<model>`.

The request is Gemini's (from a native client, or already translated from an OpenAI one); it is
told to the provider in OpenAI's format, and the answer — whole or streamed — told back in
Gemini's, so every edge and the meter read it like Google's own. The provider's keys are tried
in turn; one that is refused (401/403) or rate-limited rests for a while.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from gemgate.compat.provider_chat import StreamToGemini, from_openai, to_openai
from gemgate.compat.sse import EventReader, event
from gemgate.config import ProviderConfig
from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.classify import OK, Verdict, error_status
from gemgate.core.events import ProviderRested
from gemgate.google_errors import STATUS_BY_CODE, error_body
from gemgate.problems import ProblemId
from gemgate.secrets import key_id, mask_key, scrub

JSON_TYPE = "application/json; charset=UTF-8"
KEY_REST_S = 300.0  # a refused key, before it is tried again
RATE_REST_S = 10.0  # a rate-limited key without Retry-After


@dataclass(slots=True)
class ProviderKey:
    secret: str
    masked: str
    resting_until: float = 0.0
    id: str = ""  # the same on every replica (state/health.py), useless to anyone else


class Provider:
    def __init__(self, config: ProviderConfig) -> None:
        self.name, self.base_url, self.proxy = config.name, config.base_url, config.proxy
        self.models = dict(config.models)
        self.keys = [ProviderKey(k, mask_key(k), id=key_id(k)) for k in config.keys]
        self._turn = itertools.cycle(range(len(self.keys)))

    def next_key(self, now: float) -> ProviderKey | None:
        """The next key in turn that is not resting."""
        for _ in range(len(self.keys)):
            key = self.keys[next(self._turn)]
            if key.resting_until <= now:
                return key
        return None

    def soonest(self, now: float) -> float:
        return max(0.0, min(k.resting_until for k in self.keys) - now)


@dataclass(frozen=True, slots=True)
class Link:
    """A `<provider>/<model>` name resolved: who answers, and the model id they know."""

    provider: Provider
    model: str


def _verdict(status: int, body: bytes, retry_after: float | None) -> Verdict:
    said = f"{status}: {body[:200].decode(errors='replace')}"
    if status == 429:
        return Verdict(ProblemId.PROVIDER_RATE_LIMITED, retry=True, elsewhere=True,
                       cooldown_s=retry_after or RATE_REST_S, reason=said)
    if status in (401, 403):
        return Verdict(ProblemId.PROVIDER_KEY_INVALID, retry=True, elsewhere=True,
                       cooldown_s=KEY_REST_S, reason=said)
    if status >= 500 or status in (408, 409):
        return Verdict(ProblemId.PROVIDER_UNAVAILABLE, retry=True, reason=said)
    return Verdict(ProblemId.PROVIDER_REFUSED, reason=said)


def _message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:300].decode(errors="replace").strip() or "no message"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error or data)[:300]


def _client_status(status: int) -> int:
    """The status the client sees. A provider refusing gemgate's key, or not knowing the model
    gemgate mapped to, is the gateway's fault (502), never the client's 401 or 404."""
    if status in (400, 413, 422, 429) or 500 <= status <= 599:
        return status
    return 502


def error_answer(provider: str, status: int, body: bytes, verdict: Verdict) -> Answer:
    """The provider's error in Google's shape, naming the provider (its key masked)."""
    code = _client_status(status)
    message = f"{provider} answered {status}: {_message(body)}"
    return Answer(code, [("content-type", JSON_TYPE)],
                  error_body(code, message, STATUS_BY_CODE.get(code)), verdict=verdict)


def _retry_after(headers: Any) -> float | None:
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


class ProviderStream:
    """A provider's SSE stream, re-framed as Gemini's: SSE events (alt=sse) or the JSON array
    Google streams without it. An error event ends it; so does the provider's [DONE]; an end
    before any finish is a broken stream (raised as a network error, like Google's)."""

    def __init__(self, response: aiohttp.ClientResponse, model: str, sse: bool,
                 secret: str) -> None:
        self.response, self.sse, self.secret = response, sse, secret
        self.reader = EventReader()
        self.translator = StreamToGemini(model)
        self._sent = 0
        self._ended = False
        # An error before anything was relayed: the relay may still retry or fall back.
        self.opening_error: tuple[int, bytes] | None = None

    def _frame(self, payloads: list[bytes], last: bool = False) -> bytes:
        out = b""
        for payload in payloads:
            if self.sse:
                out += event(payload, crlf=True)
            else:
                out += (b"[" if self._sent == 0 else b",\r\n") + payload
            self._sent += 1
        if last and not self.sse:
            out += b"]" if self._sent else b"[]"
        return out

    def _translate(self, datas: list[bytes]) -> bytes:
        payloads: list[bytes] = []
        for data in datas:
            if data.strip() == b"[DONE]":
                payloads += [orjson.dumps(e) for e in self.translator.close()]
                self._ended = True
                break
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise aiohttp.ClientPayloadError("the provider sent an event that is not JSON") \
                    from None
            if isinstance(chunk, dict) and chunk.get("error"):
                code = error_status(data) or 502
                message = f"provider stream failed: {_message(data)}"
                body = scrub(error_body(code, message), self.secret)
                if self._sent == 0 and not payloads:
                    self.opening_error = (code, body)
                payloads.append(body)
                self._ended = True
                break
            payloads += [orjson.dumps(e) for e in self.translator.events(chunk)]
        return self._frame(payloads, last=self._ended)

    async def read(self) -> bytes:
        while not self._ended:
            chunk = await self.response.content.readany()
            if not chunk:
                tail = self.reader.close()
                out = self._translate(tail) if tail else b""
                if not self._ended:
                    if not self.translator.done:
                        raise aiohttp.ClientPayloadError("the provider's stream ended early")
                    self._ended = True
                    out += self._frame([orjson.dumps(e) for e in self.translator.close()],
                                       last=True)
                return scrub(out, self.secret)
            out = self._translate(self.reader.feed(chunk))
            if out:  # events re-joined and re-told: a key split by the network is whole here
                return scrub(out, self.secret)
        return b""

    def release(self) -> None:
        self.response.release()

    def close(self) -> None:
        self.response.close()


class Providers:
    def __init__(self, configs: list[ProviderConfig],
                 session_for: Any, connect_timeout_s: float, idle_timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # orders keys' rests (the pool's clock; tests pass a virtual one)
        self._by_name = {c.name: Provider(c) for c in configs}
        self._session_for = session_for  # UpstreamClient.session_for: one session per route
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                              sock_read=idle_timeout_s)
        # Told of every key set to rest (Events, and the other replicas).
        self.on_change: Callable[[ProviderRested], None] = lambda change: None

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def link(self, model: str) -> Link | None:
        name, slash, rest = model.partition("/")
        provider = self._by_name.get(name) if slash else None
        if provider is None or not rest:
            return None
        return Link(provider, provider.models.get(rest, rest))

    def view(self) -> list[dict[str, Any]]:
        """For /admin/pool: each provider, its model map, and its keys (masked) at rest."""
        now = self.clock()
        return [{"provider": p.name, "base_url": p.base_url, "models": p.models,
                 "keys": [{"key": k.masked,
                           "resting_s": round(max(0.0, k.resting_until - now), 1)}
                          for k in p.keys]} for p in self._by_name.values()]

    def apply(self, change: ProviderRested) -> None:
        """Another replica's resting key rests here too."""
        provider = self._by_name.get(change.provider)
        for key in provider.keys if provider else ():
            if key.id == change.key_id:
                key.resting_until = max(key.resting_until, self.clock() + change.seconds)

    def listed(self) -> list[tuple[str, str]]:
        """(gemgate's name, provider) of every mapped model, for /v1/models."""
        return [(f"{p.name}/{alias}", p.name) for p in self._by_name.values()
                for alias in p.models]

    async def attempt(self, call: Call, link: Link, key: ProviderKey) -> tuple[Answer, Verdict]:
        """One try at the provider; a stream is returned once its first event is in."""
        body = to_openai(call.parsed if isinstance(call.parsed, dict) else {}, link.model,
                         call.stream)
        headers = {"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json",
                   "Accept-Encoding": "identity"}
        session = self._session_for(link.provider.proxy)
        upstream = await session.post(f"{link.provider.base_url}/chat/completions",
                                      data=orjson.dumps(body), headers=headers,
                                      timeout=self._timeout)
        if upstream.status != 200:
            raw = scrub(await upstream.read(), key.secret)
            upstream.release()
            verdict = _verdict(upstream.status, raw, _retry_after(upstream.headers))
            if verdict.cooldown_s is not None:
                key.resting_until = self.clock() + verdict.cooldown_s
                self.on_change(ProviderRested(link.provider.name, key.id, verdict.cooldown_s))
            return error_answer(link.provider.name, upstream.status, raw, verdict), verdict
        if call.stream:
            stream = ProviderStream(upstream, call.model, call.sse, key.secret)
            try:
                first = await stream.read()
            except BaseException:
                upstream.close()
                raise
            if stream.opening_error is not None:
                upstream.release()
                code, raw = stream.opening_error
                verdict = _verdict(code, raw, None)
                return error_answer(link.provider.name, code, raw, verdict), verdict
            content_type = "text/event-stream" if call.sse else JSON_TYPE
            return Answer(200, [("content-type", content_type)], stream=stream,
                          first_chunk=first, secret=key.secret), OK
        raw = scrub(await upstream.read(), key.secret)
        upstream.release()
        try:
            completion = orjson.loads(raw)
        except orjson.JSONDecodeError:
            verdict = Verdict(ProblemId.PROVIDER_UNAVAILABLE, retry=True,
                              reason="answer is not JSON")
            return error_answer(link.provider.name, 502, raw, verdict), verdict
        response = from_openai(completion, call.model)
        return Answer(200, [("content-type", JSON_TYPE)], orjson.dumps(response),
                      usage=response.get("usageMetadata")), OK

