"""The simulator in-process: a context manager and a handle for tests and embedding.

    with run_simulator() as sim:
        client = genai.Client(api_key="sim-free-key-1",
                              http_options=types.HttpOptions(base_url=sim.url))
        sim.add_fault(kind="503", probability=0.5)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gemgate.serving import BackgroundServer
from gemgate.simulator.app import build_app
from gemgate.simulator.config import FaultRule, ProjectState, SimConfig, SimProject
from gemgate.simulator.core import Simulator


class RunningSimulator:
    """A simulator serving on loopback from a background thread."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.sim = Simulator(config)
        self._server = BackgroundServer(lambda: build_app(self.sim), host, port)
        self.url = self._server.url
        self.port = self._server.port

    @property
    def config(self) -> SimConfig:
        return self.sim.config

    def keys(self, project: str | None = None) -> list[str]:
        return [k for p in self.sim.projects() if project in (None, p.name) for k in p.keys]

    def add_fault(self, rule: FaultRule | None = None, **fields: Any) -> FaultRule:
        return self.sim.add_fault(rule, **fields)

    def clear_faults(self) -> None:
        self.sim.clear_faults()

    def add_project(self, project: SimProject | None = None, **fields: Any) -> None:
        self.sim.add_project(project or SimProject(**fields))

    def set_project_state(self, name: str, state: ProjectState) -> None:
        self.sim.set_project_state(name, state)

    def stats(self) -> dict[str, Any]:
        return self.sim.stats()

    def reset(self) -> None:
        self.sim.reset()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def run_simulator(config: SimConfig | None = None, **overrides: Any) -> Iterator[RunningSimulator]:
    """Starts a simulator on a free loopback port; `overrides` are SimConfig fields."""
    if overrides:
        base = (config or SimConfig()).model_dump()
        config = SimConfig.model_validate({**base, **overrides})
    running = RunningSimulator(config)
    try:
        yield running
    finally:
        running.stop()
