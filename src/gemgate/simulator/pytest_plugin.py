"""pytest fixtures, registered automatically when gemgate is installed.

`gemini_simulator` gives a fresh simulator per test (default projects and models); mark a test
with `@pytest.mark.gemini_simulator(minute_seconds=2, ...)` to pass SimConfig fields.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gemgate.simulator.runner import RunningSimulator, run_simulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gemini_simulator(**fields): SimConfig fields for the simulator fixture")


@pytest.fixture
def gemini_simulator(request: pytest.FixtureRequest) -> Iterator[RunningSimulator]:
    marker = request.node.get_closest_marker("gemini_simulator")
    overrides = dict(marker.kwargs) if marker else {}
    with run_simulator(**overrides) as running:
        yield running
