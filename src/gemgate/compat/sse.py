"""Server-sent events read incrementally from bytes as they arrive, split only at event
boundaries (a blank line), never at line separators inside the JSON (U+2028 survives)."""

from __future__ import annotations

import re

# An event ends at a blank line; Google ends lines with CRLF, OpenAI-compatible servers with LF.
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class EventReader:
    """Feed it chunks; it returns the `data` of each complete event (multi-line data joined
    with "\\n", comments and other fields skipped)."""

    def __init__(self, max_event_bytes: int = 64 * 1024 * 1024) -> None:
        self._pending = b""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk
        events: list[bytes] = []
        start = 0
        for boundary in _BOUNDARY.finditer(data):
            payload = _data_of(data[start:boundary.start()])
            if payload is not None:
                events.append(payload)
            start = boundary.end()
        self._pending = data[start:]
        if len(self._pending) > self._max:
            raise ValueError("a server-sent event is larger than the gateway accepts")
        return events

    def close(self) -> list[bytes]:
        """The last event when the stream ended without its blank line."""
        rest, self._pending = self._pending, b""
        payload = _data_of(rest) if rest.strip() else None
        return [payload] if payload is not None else []


def _data_of(event: bytes) -> bytes | None:
    lines = [line.rstrip(b"\r") for line in event.split(b"\n")]
    data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
    return b"\n".join(data) if data else None


def event(payload: bytes, crlf: bool = False) -> bytes:
    """One event carrying `payload` (JSON, so it holds no raw newline)."""
    return b"data: " + payload + (b"\r\n\r\n" if crlf else b"\n\n")
