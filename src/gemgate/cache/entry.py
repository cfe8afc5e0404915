"""A cached answer, and the framings it can be served in.

An entry keeps what Google sent: a whole body byte for byte, or a stream as its list of events
(each event's JSON as it came). A stream is served again with the same event boundaries, in
the framing the new request asks for (SSE, or the JSON array of `streamGenerateContent`
without `alt=sse`); a whole-body request is answered from a stream's events merged into one
response (text parts joined, thought parts and signatures kept), and a stream request from a
whole body as a one-event stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.compat.sse import EventReader

_DONE = frozenset({"STOP", "MAX_TOKENS"})


@dataclass(frozen=True, slots=True)
class Entry:
    model: str
    created: float  # wall clock (for `age`)
    body: bytes | None  # a whole answer, exactly as Google sent it
    events: tuple[bytes, ...]  # or a stream's events' JSON, in order
    usage: dict[str, Any] | None
    cost_usd: float  # what the answer cost upstream: what a hit saves

    @property
    def size(self) -> int:
        return len(self.body or b"") + sum(len(e) for e in self.events) + 200

    def dump(self) -> bytes:
        return orjson.dumps({"model": self.model, "created": self.created,
                             "body": self.body.decode() if self.body is not None else None,
                             "events": [e.decode() for e in self.events],
                             "usage": self.usage, "cost_usd": self.cost_usd})

    @classmethod
    def load(cls, raw: bytes) -> Entry:
        data = orjson.loads(raw)
        body = data["body"]
        return cls(data["model"], data["created"], body.encode() if body is not None else None,
                   tuple(e.encode() for e in data["events"]), data["usage"], data["cost_usd"])

    # ---- serving ----------------------------------------------------------------------------

    def whole(self) -> bytes:
        """The answer as one response body."""
        if self.body is not None:
            return self.body
        return orjson.dumps(merge([orjson.loads(e) for e in self.events]))

    def frames(self, sse: bool) -> list[bytes]:
        """The answer as stream chunks, one event each, in the framing asked for."""
        events = list(self.events) if self.body is None else [orjson.dumps(
            orjson.loads(self.body))]
        if sse:
            return [b"data: " + e + b"\r\n\r\n" for e in events]
        frames = [(b"[" if n == 0 else b"\r\n,") + e for n, e in enumerate(events)]
        frames[-1] += b"]"
        return frames


def merge(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A stream's events as the one response a whole-body call would have got: each
    candidate's parts concatenated (adjacent text parts of the same kind joined, every
    thought signature and non-text part kept), the last finish reason and usage."""
    merged: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for event in events:
        for key, value in event.items():
            if key != "candidates":
                merged[key] = value  # usageMetadata, modelVersion, responseId: the last wins
        for candidate in event.get("candidates") or ():
            index = candidate.get("index", 0)
            into = candidates.setdefault(index, {"content": {"parts": [], "role": "model"},
                                                 "index": index})
            for key, value in candidate.items():
                if key == "content":
                    into["content"]["role"] = value.get("role", "model")
                    _join(into["content"]["parts"], value.get("parts") or [])
                else:
                    into[key] = value
    if candidates:
        merged["candidates"] = [candidates[i] for i in sorted(candidates)]
    return merged


def _join(parts: list[dict[str, Any]], more: list[dict[str, Any]]) -> None:
    for part in more:
        last = parts[-1] if parts else None
        if (last is not None and "text" in part and "text" in last
                and bool(last.get("thought")) == bool(part.get("thought"))
                and "thoughtSignature" not in last and set(part) <= {"text", "thought"}):
            last["text"] += part["text"]
        else:
            parts.append(dict(part))


def events_of(raw: bytes, sse: bool) -> list[bytes]:
    """A whole stream's events' JSON: SSE split at its blank lines, a JSON array parsed."""
    if sse:
        reader = EventReader()
        return reader.feed(raw) + reader.close()
    return [orjson.dumps(item) for item in orjson.loads(raw)]


def complete(events: list[dict[str, Any]]) -> bool:
    """Whether a stream (or a whole answer, as one event) finished as a success: the last
    candidate's finish reason is STOP or MAX_TOKENS, and no error anywhere."""
    if not events or any("error" in e for e in events):
        return False
    for event in reversed(events):
        for candidate in event.get("candidates") or ():
            reason = candidate.get("finishReason")
            if reason:
                return str(reason) in _DONE
    return False


def entry_from(model: str, body: bytes | None, events: list[bytes],
               usage: dict[str, Any] | None, cost_usd: float) -> Entry:
    return Entry(model, time.time(), body, tuple(events), usage, cost_usd)
