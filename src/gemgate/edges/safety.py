"""The last net: an unexpected failure still answers in Google's JSON shape, with a request id
and no stack trace; the trace goes to the log (keys masked there by the log filter)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from .replies import gateway_error, json_reply, lang_of, new_request_id

log = logging.getLogger("gemgate")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def google_shaped_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        lang = lang_of(request)
        problem = "BODY_TOO_LARGE" if exc.status == 413 else "UNKNOWN_ROUTE"
        return json_reply(exc.status, gateway_error(exc.status, problem, lang, exc.reason))
    except Exception:
        request_id = new_request_id()
        log.exception("unhandled failure on %s %s (request %s)", request.method, request.path,
                      request_id)
        lang = lang_of(request)
        return json_reply(500, gateway_error(500, "GATEWAY_FAULT", lang),
                          {"x-gemgate-request-id": request_id})
