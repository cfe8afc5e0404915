"""`gemgate simulate` as a server, configured from YAML and flags; the pytest marker."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from google.genai import errors

from gemgate.simulator import RunningSimulator
from tests.conftest import sdk

SIM_YAML = """
seed: 3
minute_seconds: 30
projects:
  - name: team-a
    tier: free
    keys: [team-a-key]
    quotas:
      "*": {rpm: 2}
  - name: team-b
    keys: [team-b-key]
    state: region_blocked
"""


@contextmanager
def simulate(*args: str) -> Iterator[tuple[str, str]]:
    process = subprocess.Popen([sys.executable, "-m", "gemgate", "simulate", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", first)
        assert found, first
        banner = first + "".join(process.stdout.readline() for _ in range(12))
        yield found.group(1), banner
    finally:
        process.terminate()
        process.wait(10)


def test_simulate_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "sim.yaml"
    config.write_text(SIM_YAML)
    with simulate("--config", str(config)) as (url, banner):
        assert "team-a-key" in banner and "genai.Client" in banner
        client = sdk(url, "team-a-key")
        client.models.generate_content(model="gemini-2.5-flash", contents="one")
        client.models.generate_content(model="gemini-2.5-flash", contents="two")
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="three")
        assert caught.value.code == 429
        blocked = sdk(url, "team-b-key")
        with pytest.raises(errors.ClientError) as caught:
            blocked.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert caught.value.status == "FAILED_PRECONDITION"


def test_simulate_flags_inject_faults() -> None:
    with simulate("--fault", "503", "--any-key") as (url, _):
        client = sdk(url, "whatever-key")
        with pytest.raises(errors.ServerError) as caught:
            client.models.generate_content(model="gemini-2.5-flash", contents="x")
        assert caught.value.code == 503


def test_invalid_config_lists_problems_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("projects:\n  - name: x\n    keys: []\n    tier: gold\nlatency_ms: -1\n")
    done = subprocess.run([sys.executable, "-m", "gemgate", "simulate", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    for problem in ("keys", "tier", "latency_ms"):
        assert problem in done.stderr


@pytest.mark.gemini_simulator(any_key=True, latency_ms=1)
def test_fixture_marker_passes_settings(gemini_simulator: RunningSimulator) -> None:
    assert gemini_simulator.config.any_key
    client = sdk(gemini_simulator.url, "made-up")
    assert client.models.generate_content(model="gemini-2.5-flash", contents="x").text
