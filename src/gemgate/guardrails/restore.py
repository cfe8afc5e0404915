"""Putting the originals back into an answer (the `restore` action): the model answered about
`[PHONE_1]`, the client reads the number it sent.

A whole answer is one pass over its bytes (a placeholder is plain ASCII inside a JSON string;
the original goes back JSON-escaped). A stream is harder: the model writes `[PHO` in one event
and `NE_1]` in the next, so the SSE restorer reads event by event, keeps a candidate's text
that may be the start of a placeholder until the next event of that candidate (or its finish)
says what it is, and writes each event again. Only streams of calls with something to restore
pay for this; every other stream is relayed byte for byte as before.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*_\d+\]")
_PLACEHOLDER_BYTES = re.compile(rb"\[[A-Z][A-Z0-9_]*_\d+\]")
_PARTIAL = re.compile(r"\[[A-Z0-9_]*$")  # what may still become a placeholder
_PARTIAL_BYTES = re.compile(rb"\[[A-Z0-9_]*$")
_EVENT_END = re.compile(rb"\r?\n\r?\n")


def _escaped(value: str) -> bytes:
    return orjson.dumps(value)[1:-1]


def restore_body(body: bytes, originals: dict[str, str]) -> bytes:
    return _PLACEHOLDER_BYTES.sub(
        lambda m: _escaped(originals[m.group().decode()]) if m.group().decode() in originals
        else m.group(), body)


def restore_text(text: str, originals: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


class SseRestorer:
    """Restores a `alt=sse` stream event by event, holding back split placeholders."""

    def __init__(self, originals: dict[str, str]) -> None:
        self.originals = originals
        self._pending = b""
        self._held: dict[int, str] = {}  # candidate index → text that may start a placeholder
        self._longest = max(map(len, originals), default=0)

    def feed(self, chunk: bytes) -> bytes:
        self._pending += chunk
        out = []
        while (end := _EVENT_END.search(self._pending)) is not None:
            event, self._pending = self._pending[:end.start()], self._pending[end.end():]
            out.append(self._event(event) + b"\r\n\r\n")
        return b"".join(out)

    def flush(self) -> bytes:
        """What is left at the end: an unterminated event, and any text still held."""
        out = self._event(self._pending) + b"\r\n\r\n" if self._pending.strip() else b""
        self._pending = b""
        held = {i: t for i, t in self._held.items() if t}
        self._held.clear()
        if held:
            event = {"candidates": [{"index": i, "content": {"role": "model", "parts": [
                {"text": restore_text(t, self.originals)}]}} for i, t in held.items()]}
            out += b"data: " + orjson.dumps(event) + b"\r\n\r\n"
        return out

    def _event(self, event: bytes) -> bytes:
        if not event.startswith(b"data:"):
            return event
        try:
            data = orjson.loads(event[5:])
        except orjson.JSONDecodeError:
            return restore_body(event, self.originals)
        for candidate in data.get("candidates") or () if isinstance(data, dict) else ():
            if isinstance(candidate, dict):
                self._candidate(candidate)
        return b"data: " + orjson.dumps(data)

    def _candidate(self, candidate: dict[str, Any]) -> None:
        index = candidate.get("index", 0) if isinstance(candidate.get("index"), int) else 0
        parts = (candidate.get("content") or {}).get("parts") or []
        texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
        finished = candidate.get("finishReason") is not None
        if not texts:
            if finished and self._held.get(index):  # the held text's last chance
                parts.append({"text": restore_text(self._held.pop(index), self.originals)})
            return
        for number, part in enumerate(texts):
            text = self._held.pop(index, "") + part["text"]
            last = number == len(texts) - 1
            partial = _PARTIAL.search(text) if last and not finished else None
            if partial is not None and len(text) - partial.start() < self._longest:
                self._held[index] = text[partial.start():]
                text = text[:partial.start()]
            part["text"] = restore_text(text, self.originals)


class ByteRestorer:
    """A JSON-array stream (no `alt=sse`): placeholders restored where they arrive whole, a
    chunk's trailing `[…` held for the next chunk. A placeholder split across two of the
    array's elements is not rejoined (the SDKs stream with `alt=sse`)."""

    def __init__(self, originals: dict[str, str]) -> None:
        self.originals, self._held = originals, b""
        self._longest = max(map(len, originals), default=0)

    def feed(self, chunk: bytes) -> bytes:
        data, self._held = self._held + chunk, b""
        partial = _PARTIAL_BYTES.search(data)
        if partial is not None and len(data) - partial.start() < self._longest:
            data, self._held = data[:partial.start()], data[partial.start():]
        return restore_body(data, self.originals)

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return restore_body(held, self.originals)
