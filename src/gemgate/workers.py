"""`gemgate serve --workers N`: N processes serving one port, kept alive by a supervisor.

Each worker binds its own socket to the port with SO_REUSEPORT, so the kernel spreads new
connections over the workers with no hand-off through a parent (one Python process is bound to
one core; this is how gemgate grows past it). The workers share nothing in memory: quota
windows, key health, budgets and upload sessions are in Redis, the ledger and virtual keys in
PostgreSQL — which is why several workers need those backends (backends.shared_ready).

The supervisor restarts a worker that dies (a crash, an OOM kill) and, on SIGTERM or SIGINT,
passes SIGTERM on: each worker stops accepting, lets requests and streams in flight finish
(up to `server.shutdown_grace_s`), flushes its ledger, and exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from types import FrameType

from gemgate.config import Settings

log = logging.getLogger("gemgate.workers")
_RESTART_PAUSE_S = 1.0  # a worker that dies at once is not restarted in a tight loop


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other processes may bind to the same port (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """Bound but not listening: holds the port (and finds a free one for port 0) without
    taking any connection, so every connection goes to a worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


Worker = Callable[[Settings, int, ProcessEvent], None]


def for_slot(settings: Settings, slot: int) -> Settings:
    """A worker's own settings: its own ledger spool (`gemgate-spool.db` → `…-w0.db`), so
    workers never write one SQLite file together; the worker that replaces a dead one takes
    over its slot, and with it what the dead one left spooled."""
    path = Path(settings.store.spool_path)
    spool = str(path.with_name(f"{path.stem}-w{slot}{path.suffix}"))
    return settings.model_copy(update={"store": settings.store.model_copy(
        update={"spool_path": spool})})


class Supervisor:
    def __init__(self, settings: Settings, port: int, count: int, worker: Worker) -> None:
        self.settings, self.port, self.count, self.worker = settings, port, count, worker
        self._context = multiprocessing.get_context("fork")
        self._workers: dict[int, multiprocessing.process.BaseProcess] = {}
        self._stopping = False

    def _start_one(self, slot: int) -> ProcessEvent:
        ready = self._context.Event()
        process = self._context.Process(target=self.worker,
                                        args=(for_slot(self.settings, slot), self.port, ready),
                                        name=f"gemgate-worker-{slot}", daemon=False)
        process.start()
        self._workers[slot] = process
        return ready

    def run(self, on_ready: Callable[[], None]) -> None:
        # Metrics: every worker counts into files here; a scrape on any worker reads them all.
        shared = tempfile.mkdtemp(prefix="gemgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared
        try:
            self._supervise(on_ready)
        finally:
            shutil.rmtree(shared, ignore_errors=True)

    def _supervise(self, on_ready: Callable[[], None]) -> None:
        readies = [self._start_one(slot) for slot in range(self.count)]
        for ready in readies:
            ready.wait(60)
        on_ready()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        while not self._stopping:
            time.sleep(0.2)
            for slot, process in list(self._workers.items()):
                if process.is_alive() or self._stopping:
                    continue
                log.error("worker %d (pid %s) exited with %s; starting another", slot,
                          process.pid, process.exitcode)
                time.sleep(_RESTART_PAUSE_S)
                if not self._stopping:
                    self._start_one(slot)
        self._drain()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _drain(self) -> None:
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.server.shutdown_grace_s + 5.0
        for process in self._workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker pid %s did not stop within the grace period: killed",
                          process.pid)
                process.kill()
                process.join(5)
