"""Shared helpers. The `gemini_simulator` fixture comes from gemgate's own pytest plugin."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from google import genai
from google.genai import types

from gemgate.simulator import RunningSimulator


def sdk(base_url: str, key: str = "sim-free-key-1", **http: Any) -> genai.Client:
    """The real google-genai client, pointed at `base_url` — the only change users make."""
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base_url, **http))


def sim_sdk(sim: RunningSimulator, key: str = "sim-free-key-1") -> genai.Client:
    return sdk(sim.url, key)


def post(url: str, body: Any = None, *, key: str | None = "sim-free-key-1",
         content: bytes | None = None, headers: dict[str, str] | None = None,
         params: dict[str, str] | None = None) -> requests.Response:
    sent = dict(headers or {})
    if key is not None:
        sent["x-goog-api-key"] = key
    return requests.post(url, json=body if content is None else None, data=content,
                         headers=sent, params=params, timeout=30)


def eventually(holds: Callable[[], bool], within_s: float, what: str) -> None:
    """Waits until `holds()` is true, failing with `what` after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not holds():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# ---- the gateway, in-process, in front of a simulator ------------------------------------

TOKEN = "gg-test-token-0001"
UNLIMITED = {"rpm": 1_000_000, "tpm": 1_000_000_000, "rpd": 1_000_000_000}
ADMIN = "gg-admin-key-0001"


class RunningGateway:
    def __init__(self, settings: Any, clock: Callable[[], float] = time.time,
                 health: Any = None) -> None:
        from gemgate.app import EVENTS, POOL, build_app
        from gemgate.serving import BackgroundServer

        self.settings = settings
        self.db_path = settings.ledger.path
        holder: dict[str, Any] = {}

        def make() -> Any:
            app = build_app(settings, clock, health)
            holder["pool"] = app[POOL]
            holder["events"] = app[EVENTS]
            holder["app"] = app
            return app

        self._server = BackgroundServer(make)
        self.url = self._server.url
        self.pool = holder["pool"]
        self.events = holder["events"]  # the pipeline's Events: tests may listen
        self.app = holder["app"]

    def pool_view(self) -> list[dict[str, Any]]:
        answer = requests.get(self.url + "/admin/pool",
                              headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5)
        answer.raise_for_status()
        return answer.json()["projects"]  # type: ignore[no-any-return]

    def project_view(self, name: str) -> dict[str, Any]:
        return next(p for p in self.pool_view() if p["project"] == name)

    def admin(self, method: str, path: str, body: Any = None,
              token: str = ADMIN) -> requests.Response:
        return requests.request(method, self.url + path, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {token}"})

    def new_key(self, **spec: Any) -> tuple[str, dict[str, Any]]:
        """A virtual key made through the admin API: (secret, its view)."""
        answer = self.admin("POST", "/admin/vkeys", {"name": "member", **spec})
        assert answer.status_code == 201, answer.text
        view = answer.json()
        return view.pop("secret"), view

    def ledger(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Ledger rows, read from the database file as any other reader would."""
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(f"SELECT * FROM requests WHERE {where} ORDER BY id", args)
            return [dict(row) for row in rows]

    def stop(self) -> None:
        self._server.stop()


def gateway_settings(upstream: str, projects: list[dict[str, Any]] | None = None,
                     **fields: Any) -> Any:
    from gemgate.config import Settings

    projects = projects or [{"name": "sim-free", "keys": ["sim-free-key-1", "sim-free-key-2"]},
                            {"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    # Tests about other things must not be paced by the free tier's real limits (10 RPM);
    # the scheduling tests give their projects limits of their own.
    projects = [{"limits": {"*": UNLIMITED}, **p} for p in projects]
    ledger = {"path": str(Path(tempfile.mkdtemp(prefix="gemgate-test-")) / "gemgate.db"),
              **fields.pop("ledger", {})}
    base: dict[str, Any] = {"upstream_url": upstream, "projects": projects, "ledger": ledger,
                            "tenants": [{"name": "team", "token": TOKEN}], "admin_key": ADMIN,
                            "retry": {"attempts": 5, "base_delay_s": 0.01, "max_delay_s": 0.1}}
    return Settings.model_validate({**base, **fields})


@contextmanager
def run_gateway(upstream: str, projects: list[dict[str, Any]] | None = None,
                clock: Callable[[], float] = time.time, health: Any = None,
                **fields: Any) -> Iterator[RunningGateway]:
    gateway = RunningGateway(gateway_settings(upstream, projects, **fields), clock, health)
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    """One simulator for a whole test module (default projects and models)."""
    from gemgate.simulator import run_simulator

    with run_simulator() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(sim: RunningSimulator) -> Iterator[RunningGateway]:
    """One gateway in front of `sim` for a whole test module."""
    with run_gateway(sim.url) as running:
        yield running


@pytest.fixture
def batch_sim() -> Iterator[RunningSimulator]:
    """A simulator of this test's own: batch tests tune its job timing."""
    from gemgate.simulator import run_simulator

    with run_simulator() as running:
        yield running


def tune_sim(sim: RunningSimulator, **settings: Any) -> None:
    """Changes a running simulator's settings (`/_sim/config`)."""
    requests.patch(sim.url + "/_sim/config", json=settings, timeout=5).raise_for_status()
