"""The last net around every route: an unexpected failure still answers in Google's JSON shape,
with a request id and no stack trace (the trace goes to the log, keys masked there, once per
place in the code); and a request that no pipeline stage logged — an unknown path, an upload's
data chunk, an admin or health call — still gets its one access-log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gemgate.logs import access_log
from gemgate.problems import ProblemId

from .replies import gateway_error, json_reply, lang_of, new_request_id

log = logging.getLogger("gemgate")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Set on a request whose line the pipeline writes itself (with tenant, model, tokens, …).
LOGGED = web.RequestKey("gemgate.logged", bool)


@web.middleware
async def google_shaped_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await _answer(request, handler)
    if not request.get(LOGGED):
        _log_plain(request, response, started)
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        lang = lang_of(request)
        problem = ProblemId.BODY_TOO_LARGE if exc.status == 413 else ProblemId.UNKNOWN_ROUTE
        return json_reply(exc.status, gateway_error(exc.status, problem, lang, exc.reason))
    except Exception:
        request_id = new_request_id()
        log.exception("unhandled failure on %s %s (request %s)", request.method, request.path,
                      request_id)
        lang = lang_of(request)
        return json_reply(500, gateway_error(500, ProblemId.GATEWAY_FAULT, lang),
                          {"x-gemgate-request-id": request_id})


def _log_plain(request: web.Request, response: web.StreamResponse, started: float) -> None:
    request_id = response.headers.get("x-gemgate-request-id")
    if request_id is None and not response.prepared:
        request_id = response.headers["x-gemgate-request-id"] = new_request_id()
    writer = access_log()
    if writer is None:
        return
    # The same fields as the pipeline's lines, so a log reader needs one schema.
    writer.write({"request_id": request_id, "tenant": None, "method": request.method,
                  "surface": "gateway", "route": request.path, "model": None,
                  "model_asked": None, "priority": None, "stream": False, "provider": None,
                  "project": None, "key": None, "status": response.status, "problem": None,
                  "attempts": 0, "upstream_ms": 0,
                  "total_ms": round((time.perf_counter() - started) * 1000, 2)})
