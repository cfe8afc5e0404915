"""Assembles the simulator's aiohttp application from its three surfaces."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gemgate.google_errors import error_body
from gemgate.simulator.batches import BatchesSurface
from gemgate.simulator.caches import CachesSurface
from gemgate.simulator.config import SimConfig
from gemgate.simulator.control import ControlSurface
from gemgate.simulator.core import Simulator
from gemgate.simulator.files import FilesSurface
from gemgate.simulator.interactions import InteractionsSurface
from gemgate.simulator.live import LiveSurface
from gemgate.simulator.openai_api import OpenAISurface
from gemgate.simulator.server import GeminiSurface, json_response

log = logging.getLogger("gemgate.simulator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def google_shaped_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown routes and unexpected failures still answer in Google's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"Method not found: {request.method} {request.path}" if exc.status in (
            404, 405) else exc.reason
        return json_response(exc.status, error_body(exc.status, message))
    except ConnectionResetError:
        raise
    except Exception:
        log.exception("simulator failed on %s", request.path)
        return json_response(500, error_body(500, "Internal error encountered."))


SIMULATOR = web.AppKey("simulator", Simulator)


def received(simulator: Simulator) -> Middleware:
    """Remembers each JSON body sent to Google's surfaces (what `/_sim/requests` shows)."""

    @web.middleware
    async def remember(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.can_read_body and request.content_type == "application/json" and \
                not request.path.startswith("/_sim/"):
            body = await request.read()  # aiohttp keeps it: the handler reads it again
            simulator.received.append({"method": request.method, "path": request.path,
                                       "body": body[:65536].decode("utf-8", "replace")})
        return await handler(request)

    return remember


def build_app(sim: Simulator | SimConfig | None = None) -> web.Application:
    simulator = sim if isinstance(sim, Simulator) else Simulator(sim)
    app = web.Application(middlewares=[google_shaped_errors, received(simulator)],
                          client_max_size=64 * 1024 * 1024)
    app[SIMULATOR] = simulator  # a typed key: a plain string warns NotAppKeyWarning
    files = FilesSurface(simulator)
    simulator.file_owner = files.owner_of
    caches = CachesSurface(simulator)
    simulator.cache_owner = caches.owner_of
    gemini = GeminiSurface(simulator)
    batches = BatchesSurface(simulator, files, gemini.answer_offline)
    gemini.on_batch = batches.create
    # The Gemini routes come first: the router tries resources in order, and they are the hot path.
    interactions = InteractionsSurface(simulator, gemini.answer_offline)
    live = LiveSurface(simulator, gemini.answer_offline)
    for surface in (gemini, files, caches, batches, interactions, live,
                    OpenAISurface(simulator), ControlSurface(simulator)):
        app.add_routes(surface.routes())
    return app
