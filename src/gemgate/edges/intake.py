"""Reading a request's body: bounded in size, in how long the client may pause between bytes,
and refused in the right shape when it cannot be read (a `Content-Encoding: gzip` that is not
gzip, a connection cut mid-body).

Why an idle timeout and not a total one: a legitimate upload on a slow link may take many
minutes, but never stops sending for a whole minute; a client that promised a body and sends
nothing holds a connection and a buffer for ever (nginx's client_body_timeout works the same
way, between two reads).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from gemgate.pipeline.inbound import BodyProblem
from gemgate.problems import ProblemId

# What aiohttp raises for a body it cannot decode or that ends early.
UNREADABLE = (RequestPayloadError, HttpProcessingError, web.HTTPBadRequest,
              ConnectionResetError)


class BodyReader:
    def __init__(self, max_bytes: int, idle_timeout_s: float) -> None:
        self.max_bytes, self.idle_timeout_s = max_bytes, idle_timeout_s

    async def read(self, request: web.Request) -> bytes:
        """The whole body. A body that has already arrived (the usual small JSON request) is
        taken at once; a longer one chunk by chunk, each wait bounded by the idle timeout."""
        try:
            if request.content.is_eof():
                return await request.read()
            body = bytearray()
            async for chunk in self.chunks(request):
                body += chunk
                if len(body) > self.max_bytes:
                    raise BodyProblem(ProblemId.BODY_TOO_LARGE)
            return bytes(body)
        except web.HTTPRequestEntityTooLarge:
            raise BodyProblem(ProblemId.BODY_TOO_LARGE) from None
        except UNREADABLE:
            raise BodyProblem(ProblemId.BODY_UNREADABLE) from None

    async def chunks(self, request: web.Request) -> AsyncIterator[bytes]:
        """The body as it arrives (for streaming it on); BodyProblem(BODY_TIMEOUT) when the
        client pauses longer than the idle timeout."""
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    chunk = await request.content.readany()
            except TimeoutError:
                raise BodyProblem(ProblemId.BODY_TIMEOUT) from None
            if not chunk:
                return
            yield chunk
