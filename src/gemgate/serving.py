"""Running an aiohttp application: in the foreground for the CLI, or on a background thread for
tests and embedding (each with its own event loop, uvloop when available)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from gemgate.tls import TLS

T = TypeVar("T")
# Seconds a connection may go without a complete request (new, half-sent headers, or idle
# keep-alive) before the server closes it; an app sets it, aiohttp's own default is an hour.
IDLE_TIMEOUT_S = web.AppKey("idle_timeout_s", float)
# On shutdown, how long handlers in flight (a stream included) may run on (server.shutdown_grace_s).
SHUTDOWN_GRACE_S = web.AppKey("shutdown_grace_s", float)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows only
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound before the app starts, so port 0 gives a free port the caller can read at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_app(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serves `app` on `sock`, over TLS when the app carries a context (gemgate.tls.TLS)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=app.get(SHUTDOWN_GRACE_S, 1.0),
                           keepalive_timeout=app.get(IDLE_TIMEOUT_S, 75.0))
    await runner.setup()
    await web.SockSite(runner, sock, ssl_context=app.get(TLS)).start()
    return runner


class BackgroundServer:
    """An aiohttp app served from a daemon thread; `url` is ready when the constructor returns."""

    def __init__(self, make_app: Callable[[], web.Application], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self._sock = listening_socket(host, port)
        self.host, self.port = host, self._sock.getsockname()[1]
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self.scheme = "http"
        self._thread = threading.Thread(target=self._serve, args=(make_app,), daemon=True,
                                        name=f"server:{self.port}")
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise RuntimeError("server failed to start") from self._failure

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _serve(self, make_app: Callable[[], web.Application]) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            app = make_app()
            self.scheme = "https" if app.get(TLS) is not None else "http"
            self._runner = self.loop.run_until_complete(start_app(app, self._sock))
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(apps: list[tuple[web.Application, socket.socket]],
                  on_ready: Callable[[], None] | None = None) -> None:
    """Serves each app on its socket in the foreground until SIGINT or SIGTERM."""
    import signal

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    runners = [loop.run_until_complete(start_app(app, sock)) for app, sock in apps]
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    if on_ready is not None:
        on_ready()
    try:
        loop.run_until_complete(stop.wait())
    finally:
        for runner in reversed(runners):
            loop.run_until_complete(runner.cleanup())
        loop.close()
