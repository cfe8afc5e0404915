"""CORS, for browser apps that call gemgate directly (@google/genai, the Vercel AI SDK, openai
in a browser): preflights answered without a token, and the CORS headers on every answer, for
the origins the operator allows — none by default, and then nothing here runs at all.

Tokens travel in headers (x-goog-api-key, Authorization), never cookies, so credentials are
not allowed and `*` may stand for any origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gemgate.config import CorsConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
# What a browser app may read from an answer: the gateway's own headers, the upload protocol's
# (the SDKs read x-goog-upload-url to send the file), and when to retry.
_EXPOSED = ", ".join(["x-gemgate-request-id", "x-gemgate-model", "x-gemgate-route",
                      "x-goog-upload-url", "x-goog-upload-status",
                      "x-goog-upload-chunk-granularity", "x-goog-upload-size-received",
                      "retry-after"])


class Cors:
    def __init__(self, config: CorsConfig) -> None:
        self.any = "*" in config.allowed_origins
        self.origins = frozenset(o.rstrip("/") for o in config.allowed_origins)
        self.max_age = str(config.max_age_s)

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin in self.origins)

    @web.middleware
    async def preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """OPTIONS with Access-Control-Request-Method is the browser asking, not the app
        calling: it carries no token, and must not meet auth."""
        if request.method != "OPTIONS" or \
                "Access-Control-Request-Method" not in request.headers:
            return await handler(request)
        origin = request.headers.get("Origin")
        if not self.allowed(origin):
            return web.Response(status=403, text="origin not allowed",
                                headers={"Vary": "Origin"})
        asked = request.headers.get("Access-Control-Request-Headers", "")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin or "*",
            "Access-Control-Allow-Methods": _METHODS,
            "Access-Control-Allow-Headers": asked or "content-type, x-goog-api-key",
            "Access-Control-Max-Age": self.max_age, "Vary": "Origin"})

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer to an allowed origin, streams included, says so."""
        origin = request.headers.get("Origin")
        if self.allowed(origin):
            assert origin is not None
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSED
            response.headers.add("Vary", "Origin")
