"""What the relay hands back to an edge: a whole body, or an open stream to pipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from gemgate.problems import ProblemId
from gemgate.secrets import StreamScrubber

if TYPE_CHECKING:
    from gemgate.core.classify import Verdict


class ChunkStream(Protocol):
    """An answer still arriving, in Gemini's stream framing. `read` gives b"" at the end and
    raises a network error (aiohttp.ClientError, OSError, TimeoutError) when it breaks."""

    async def read(self) -> bytes: ...

    def release(self) -> None:
        """Done, cleanly: the connection may be reused."""

    def close(self) -> None:
        """Abandoned: drop the connection."""


class GoogleStream:
    """Google's stream as it comes: its bytes are relayed untouched, never re-framed — but
    for any key in them, masked (an error event may spell out the key that was used)."""

    __slots__ = ("response", "scrubber")

    def __init__(self, response: aiohttp.ClientResponse, scrubber: StreamScrubber) -> None:
        self.response, self.scrubber = response, scrubber

    async def read(self) -> bytes:
        while True:
            chunk = await self.response.content.readany()
            if not chunk:
                return self.scrubber.flush()
            relayed = self.scrubber.feed(chunk)
            if relayed:
                return relayed

    def release(self) -> None:
        self.response.release()

    def close(self) -> None:
        self.response.close()


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: ChunkStream | None = None
    first_chunk: bytes = b""
    # What a stream holds until it ends, returned then by the upstream that gave it (a pool's
    # Lease, so in-flight counts stay true; a scheduler's Grant, settled with the real usage).
    # Typed where they are made and used (pipeline.google): core depends on no layer above it.
    lease: Any = None
    grant: Any = None
    verdict: Verdict | None = None  # why an upstream error is being passed on
    gateway_problem: ProblemId | None = None  # gemgate's own refusal (no room, no keys, deadline)
    retry_after_s: float | None = None
    quota_error: bytes = b""  # the last upstream 429, whose QuotaFailure explains a refusal
    usage: dict[str, Any] | None = None  # Google's usageMetadata, found once for all readers
    secret: str | None = None  # the upstream key used, to mask in what else it answers
    message: str | None = None  # gemgate's own words for a refusal, when more than its id's
    cause: ProblemId | None = None  # the problem behind a refusal, whose hint says how to fix it

    @property
    def problem(self) -> ProblemId | None:
        return self.gateway_problem or (self.verdict.problem if self.verdict else None)
