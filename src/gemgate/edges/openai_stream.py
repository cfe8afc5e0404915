"""An OpenAI chat stream written from Gemini's: each Gemini event becomes chat.completion.chunk
events, the stream ends with `data: [DONE]`, and a failure after the first byte ends it with an
error chunk (which the openai SDKs raise as APIError) — never a hang or a silent, short
success. The pipeline's StreamRun owns the upstream's life; this only translates."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from gemgate.compat.chat_response import ChunkTranslator, ToolIds
from gemgate.compat.errors import openai_error
from gemgate.compat.sse import EventReader, event
from gemgate.core.call import Call
from gemgate.core.classify import NETWORK_FAILURE, Verdict, classify, error_status
from gemgate.pipeline.streams import StreamRun
from gemgate.problems import ProblemId, hint

from .gemini import finish_stream

DONE = b"data: [DONE]\n\n"


def _dumps(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def error_chunk(call: Call, status: int, problem: ProblemId | None, message: str) -> bytes:
    return event(_dumps(openai_error(status, message, problem,
                                     hint(problem, call.lang) if problem else None)))


def _failure(data: bytes) -> tuple[Verdict, int, str] | None:
    """(verdict, status, message) when a Gemini event is an error or unreadable."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        return NETWORK_FAILURE, 502, "The upstream sent an unreadable event."
    error = parsed.get("error")
    if not isinstance(error, dict):
        return None
    status = error_status(data) or 502
    return classify(status, data), status, str(error.get("message") or "Upstream error")


async def write_chat_stream(request: web.Request, call: Call, run: StreamRun,
                            headers: dict[str, str], include_usage: bool) -> web.StreamResponse:
    response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    translator = ChunkTranslator(call.model, f"chatcmpl-{call.request_id}", int(time.time()),
                                 ToolIds(call.request_id))
    reader = EventReader()
    async with run:
        await response.prepare(request)
        failed = False
        async for chunk in run.chunks():
            for data in reader.feed(chunk):
                failure = _failure(data)
                if failure is not None:
                    verdict, status, message = failure
                    problem = verdict.problem or ProblemId.UPSTREAM_INTERNAL
                    if verdict is NETWORK_FAILURE:
                        problem = ProblemId.UPSTREAM_INTERNAL
                    await response.write(error_chunk(call, status, problem, message))
                    run.failed(status, verdict)
                    failed = True
                    break
                for piece in translator.chunks(orjson.loads(data)):
                    await response.write(event(_dumps(piece)))
            if failed:
                break
        if not failed and not translator.finished:  # cut off before Google said it was done
            run.failed(502, NETWORK_FAILURE)
            failed = True
            await response.write(error_chunk(call, 502, ProblemId.STREAM_INTERRUPTED,
                                             "The upstream stream was interrupted."))
        if not failed and include_usage:
            await response.write(event(_dumps(translator.usage_chunk())))
        await response.write(DONE)
    await finish_stream(response, run)
    return response
