"""The semantic cache: a stored answer for a request whose last user turn means the same.

Only the last user turn is compared, by the cosine similarity of its embedding; everything
else — the scope (tenant), model, system instruction, earlier turns, tools, generation config —
must match exactly: it is hashed into the `context` an entry is indexed under. A request with
tools or non-text parts never matches (unless `cache.semantic.with_tools`). The threshold is
0.95 by default, per tenant if set; every hit's similarity is recorded and sent back in
`x-gemgate-cache-similarity`.

Embeddings come from Gemini's own embedding model through gemgate's own pool (a small
`outputDimensionality`), made as an internal tenant's calls (`gemgate-cache`), so they are
scheduled, retried and recorded in the ledger like any other; an `Embedder` of one's own (a local
model) can stand in. The index keeps, per scope and context, the vectors of stored entries: in
memory (bounded), or in Redis when the state is shared.
"""

from __future__ import annotations

import array
import hashlib
import math
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from gemgate.cache.policy import canonical
from gemgate.core.answer import Answer
from gemgate.core.call import Call, Tenant
from gemgate.core.events import Events, Finished
from gemgate.state.redis.link import Down, Link, as_bytes

Forward = Callable[[Call], Awaitable[Answer]]  # the relay's: pool, scheduling, retries

INTERNAL_TENANT = Tenant("gemgate-cache", priority="high", cache=False)


class Embedder(Protocol):
    async def embed(self, text: str) -> list[float] | None:
        """A unit vector for `text`, or None when none could be made (then no semantic
        match: the call goes upstream)."""


def last_user_text(body: dict[str, Any], with_tools: bool) -> tuple[str, bytes] | None:
    """(the last user turn's text, the canonical rest of the request), or None when the
    request cannot be matched by meaning."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents or not isinstance(contents[-1], dict):
        return None
    if not with_tools and (body.get("tools") or body.get("cachedContent") or
                           body.get("cached_content")):
        return None
    last = contents[-1]
    if last.get("role", "user") != "user":
        return None
    parts = last.get("parts")
    if not isinstance(parts, list) or not parts:
        return None
    if not with_tools and not all(isinstance(p, dict) and set(p) == {"text"} for p in parts):
        return None
    text = "\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)).strip()
    if not text:
        return None
    try:
        return text, canonical({**body, "contents": contents[:-1]})
    except TypeError:  # a number beyond 64 bits
        return None


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=False))


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class GatewayEmbedder:
    """Embeddings through gemgate's own relay (pool, scheduling, retries), recorded in the
    ledger under the internal tenant."""

    def __init__(self, forward: Forward, events: Events, model: str, dimensions: int,
                 deadline_s: float = 10.0) -> None:
        self.forward, self.events = forward, events
        self.model, self.dimensions, self.deadline_s = model, dimensions, deadline_s

    async def embed(self, text: str) -> list[float] | None:
        body = {"model": f"models/{self.model}", "content": {"parts": [{"text": text}]},
                "outputDimensionality": self.dimensions}
        call = Call(request_id="cache-" + os.urandom(6).hex(),
                    method="POST", version="v1beta", path=f"models/{self.model}:embedContent",
                    query="", headers={"Content-Type": "application/json"},
                    body=orjson.dumps(body), tenant=INTERNAL_TENANT, model=self.model,
                    action="embedContent", parsed=body, priority="high", fallback=False)
        call.model_asked = self.model
        call.deadline = call.started + self.deadline_s
        answer = await self.forward(call)
        ok = answer.status == 200
        await self.events.finished(call, Finished(answer.status, None if ok else answer.problem,
                                                  answer.usage if ok else None))
        if not ok:
            return None
        try:
            values = orjson.loads(answer.body)["embedding"]["values"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        return _unit([float(v) for v in values])


class VectorIndex(Protocol):
    async def add(self, scope: str, context: str, digest: str, vector: list[float],
                  ttl_s: float) -> None: ...

    async def nearest(self, scope: str, context: str,
                      vector: list[float]) -> tuple[str, float] | None:
        """The stored digest most similar to `vector`, and its similarity."""


class MemoryIndex:
    """Vectors per scope and context, at most `max_entries` per scope (oldest out first)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._scopes: dict[str, OrderedDict[tuple[str, str], list[float]]] = {}

    async def add(self, scope: str, context: str, digest: str, vector: list[float],
                  ttl_s: float) -> None:
        vectors = self._scopes.setdefault(scope, OrderedDict())
        vectors[(context, digest)] = vector
        vectors.move_to_end((context, digest))
        while len(vectors) > self.max_entries:
            vectors.popitem(last=False)

    async def nearest(self, scope: str, context: str,
                      vector: list[float]) -> tuple[str, float] | None:
        best: tuple[str, float] | None = None
        for (where, digest), stored in self._scopes.get(scope, {}).items():
            if where == context:
                similarity = cosine(vector, stored)
                if best is None or similarity > best[1]:
                    best = (digest, similarity)
        return best


class RedisIndex:
    """Vectors shared by every replica: a hash per scope and context (digest → float32s)."""

    def __init__(self, link: Link, max_entries: int) -> None:
        self.link = link
        self.local = MemoryIndex(max_entries)
        self.max_entries = max_entries

    def _name(self, scope: str, context: str) -> str:
        return self.link.key("sv", scope, context)

    async def add(self, scope: str, context: str, digest: str, vector: list[float],
                  ttl_s: float) -> None:
        name = self._name(scope, context)
        pipe = self.link.client.pipeline(transaction=False)
        pipe.hset(name, digest, array.array("f", vector).tobytes())
        pipe.pexpire(name, max(1, int(ttl_s * 1000)))
        try:
            await self.link.call(pipe.execute())
        except Down:
            await self.local.add(scope, context, digest, vector, ttl_s)

    async def nearest(self, scope: str, context: str,
                      vector: list[float]) -> tuple[str, float] | None:
        try:
            stored = await self.link.call(self.link.client.hgetall(self._name(scope, context)))
        except Down:
            return await self.local.nearest(scope, context, vector)
        best: tuple[str, float] | None = None
        for digest, raw in list(stored.items())[-self.max_entries:]:
            found = array.array("f")
            found.frombytes(as_bytes(raw))
            similarity = cosine(vector, list(found))
            if best is None or similarity > best[1]:
                best = (as_bytes(digest).decode(), similarity)
        return best


def context_key(call: Call, rest: bytes) -> str:
    """What must match exactly besides the scope: version, model, and the rest of the body."""
    return hashlib.sha256(f"{call.version}\n{call.model}\n".encode() + rest).hexdigest()[:32]
