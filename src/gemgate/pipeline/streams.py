"""A stream's life, owned by the pipeline: the edge only iterates and writes.

`async with outcome.stream as run:` then `async for chunk in run.chunks():` relays the answer as
it arrives (never re-framed). Leaving the block normally ends the stream: the upstream
connection reused (or dropped when it broke), the key returned, the quota settled with the
usage in the last chunk, and the record committed — so the edge writes its last byte after
the block. A client that goes away (a write raising ConnectionResetError, or the handler
cancelled) is recorded as cancelled (499) with the usage of the last chunk it was sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.core.classify import NETWORK_FAILURE, OK, Verdict, classify, error_status
from gemgate.core.events import Events, Finished
from gemgate.upstream.client import NETWORK_ERRORS
from gemgate.usage import find_usage

_TAIL = 8192  # bytes kept from the end: the usage and any error event are there
Keep = Callable[[Call, bytes | None, dict[str, Any] | None], Awaitable[None]]


class Restorer(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def flush(self) -> bytes: ...
_BACKGROUND: set[asyncio.Future[None]] = set()  # abandoned streams' endings in flight


def error_event(tail: bytes) -> tuple[int, Verdict] | None:
    """The status and meaning of an error event at the very end of a stream (`data: {"error":
    …}` or, in a JSON-array stream, `,{"error": …}]`); None when it ended otherwise."""
    at = tail.rfind(b'{"error"')
    if at < 0:
        return None
    body = tail[at:].strip().removesuffix(b"]").strip()
    code = error_status(body)
    return (code, classify(code, body)) if code else None


class StreamRun:
    def __init__(self, call: Call, answer: Answer,
                 end: Callable[[Answer, Verdict, bytes], Awaitable[None]],
                 events: Events, keep: Keep | None = None, keep_limit: int = 0,
                 restorer: Restorer | None = None) -> None:
        assert answer.stream is not None
        self.call, self.answer = call, answer
        self._end, self._events = end, events
        # The response cache's: the whole stream, once it ended well (None: it did not).
        self._keep = keep
        self._kept: list[bytes] | None = [answer.first_chunk] if keep is not None else None
        self._kept_bytes, self._keep_limit = len(answer.first_chunk), keep_limit
        self.verdict: Verdict = OK
        self.tail = answer.first_chunk
        self.broken = False  # the upstream failed mid-stream
        self._status: int | None = None
        self._over = False
        self.abandoned = False  # the client left before the end
        # The guardrails' `restore`: what the client is sent gets the originals back (what
        # the cache keeps, and the tail the usage is read from, stay as Google sent them).
        self._restorer = restorer

    async def chunks(self) -> AsyncIterator[bytes]:
        """The answer's chunks as they arrive; stops (with `broken` set) if the upstream
        fails mid-stream."""
        restorer = self._restorer
        if restorer is None:
            async for chunk in self._upstream_chunks():
                yield chunk
            return
        async for chunk in self._upstream_chunks():
            if out := restorer.feed(chunk):
                yield out
        if out := restorer.flush():
            yield out

    async def _upstream_chunks(self) -> AsyncIterator[bytes]:
        stream = self.answer.stream
        assert stream is not None
        yield self.answer.first_chunk
        while True:
            try:
                chunk = await stream.read()
            except (TimeoutError, *NETWORK_ERRORS):
                self.broken, self.verdict = True, NETWORK_FAILURE
                return
            if not chunk:
                return
            self.tail = (self.tail + chunk)[-_TAIL:]
            if self._kept is not None:
                self._kept_bytes += len(chunk)
                if self._kept_bytes > self._keep_limit:
                    self._kept = None  # too big to keep
                else:
                    self._kept.append(chunk)
            yield chunk

    def failed(self, status: int, verdict: Verdict) -> None:
        """The edge found the stream failed in a way only its translation sees (an OpenAI
        stream cut before Google's finish reason)."""
        self._status, self.verdict = status, verdict

    async def __aenter__(self) -> StreamRun:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> bool:
        if kind is None:
            await self._close()
            return False
        if not self._over:  # the client left, the handler was cancelled, or a fault: the key
            self._abandon()  # and the quota go back, and the request is recorded, whatever
        return issubclass(kind, ConnectionResetError)  # the client left: nothing more to do

    async def _close(self) -> None:
        stream = self.answer.stream
        assert stream is not None
        status = 502 if self.broken else self._status or 200
        if status == 200:  # an upstream error event ends it: relayed as sent, recorded as such
            status, self.verdict = error_event(self.tail) or (status, self.verdict)
        if self.broken or self._status is not None:
            stream.close()
        else:
            stream.release()
        self.answer.usage = find_usage(self.tail)
        await self._end(self.answer, self.verdict, self.tail)
        if self._keep is not None:
            whole = status == 200 and self._kept is not None
            await self._keep(self.call, b"".join(self._kept or ()) if whole else None,
                             self.answer.usage)
        self._over = True
        await self._events.finished(self.call, Finished(status, self.verdict.problem,
                                                        self.answer.usage))

    def _abandon(self) -> None:
        stream = self.answer.stream
        assert stream is not None
        self.abandoned = True
        stream.close()
        self.answer.usage = find_usage(self.tail)  # what the client was sent
        # Not awaited: the handler may be being cancelled. The key and quota go back at once
        # with the memory state; a networked state finishes in the background.
        endings = [self._end(self.answer, self.verdict, self.tail)]
        if self._keep is not None:  # cut short: nothing kept; calls waiting on it go on
            endings.append(self._keep(self.call, None, None))
        for ending in map(asyncio.ensure_future, endings):
            _BACKGROUND.add(ending)
            ending.add_done_callback(_BACKGROUND.discard)
        self._over = True
        self._events.abandoned(self.call, Finished(499, self.verdict.problem,
                                                   self.answer.usage, cancelled=True))
