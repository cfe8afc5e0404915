"""A whole run of the real `gemgate serve` process, every log line captured: no upstream key
appears unmasked anywhere — not in logs, not in answers — even when Google spells one out."""

from __future__ import annotations

import json
import os
import random
import re
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from google.genai import errors

from gemgate.secrets import mask_key
from tests.conftest import ADMIN, TOKEN, sdk


def google_shaped_key(rng: random.Random) -> str:
    """Made at run time so no key-shaped string is ever committed."""
    return "AIza" + "".join(rng.choice(string.ascii_letters + string.digits + "-_")
                            for _ in range(35))


@contextmanager
def started(args: list[str], log: Path, env: dict[str, str]) -> Iterator[str]:
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "gemgate", *args], stdout=sink,
                                   stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd="/")
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                found = re.search(r"listening on (http://\S+)", log.read_text())
                if found:
                    yield found.group(1)
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"no banner:\n{log.read_text()}")
        finally:
            process.terminate()
            process.wait(10)


def test_no_unmasked_key_in_a_full_run(tmp_path: Path) -> None:
    rng = random.Random()
    live, suspended, unknown = (google_shaped_key(rng) for _ in range(3))
    sim_yaml = tmp_path / "sim.yaml"
    sim_yaml.write_text(yaml.safe_dump({"projects": [
        {"name": "live", "keys": [live]}, {"name": "doomed", "keys": [suspended]}]}))
    gateway_log, sim_log = tmp_path / "gateway.log", tmp_path / "sim.log"
    with started(["simulate", "--port", "0", "--config", str(sim_yaml)], sim_log, {}) as sim_url:
        requests.post(sim_url + "/_sim/projects/doomed/state", json={"state": "suspended"},
                      timeout=5).raise_for_status()
        config = tmp_path / "gemgate.yaml"
        config.write_text(yaml.safe_dump({"projects": [
            {"name": name, "tier": "tier3", "keys": [key]}
            for name, key in (("live", live), ("doomed", suspended), ("ghost", unknown))]}))
        env = {"GEMGATE_UPSTREAM_URL": sim_url, "GEMGATE_CLIENT_KEYS": TOKEN,
               "GEMGATE_ADMIN_KEY": ADMIN, "GEMGATE_LOG_LEVEL": "DEBUG",
               "GEMGATE_PROBE_INTERVAL_S": "0.2", "GEMINI_API_KEYS": "",
               "GEMGATE_DB": str(tmp_path / "gemgate.db")}
        with started(["serve", "--port", "0", "--config", str(config)], gateway_log,
                     env) as url:
            bodies = _exercise(url, sim_url)
    everything = gateway_log.read_text() + "\n".join(bodies)
    for key in (live, suspended, unknown):
        assert key not in everything
        assert key[4:] not in everything  # not even without its prefix
    assert mask_key(live) in everything  # keys do appear, masked
    assert mask_key(suspended) in everything
    lines = [json.loads(line) for line in gateway_log.read_text().splitlines()
             if line.startswith("{")]
    served = [line for line in lines if line.get("logger") == "gemgate.access"
              and line["status"] == 200 and line["model"]]
    assert served, "one JSON line per request"
    for field in ("request_id", "tenant", "model", "project", "key", "status", "attempts",
                  "upstream_ms", "total_ms", "tokens"):
        assert field in served[0]
    assert served[0]["tokens"]["totalTokenCount"] > 0
    assert any(line["attempts"] > 1 for line in lines if line.get("logger") ==
               "gemgate.access")  # the storm's retries are visible


def _exercise(url: str, sim_url: str) -> list[str]:
    """Successes, streams, key failures, storms and admin views; returns what clients saw."""
    seen = []
    client = sdk(url, TOKEN)
    for _ in range(6):
        seen.append(client.models.generate_content(model="gemini-2.5-flash",
                                                   contents="hi").model_dump_json())
    seen += [c.model_dump_json() for c in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="Write 30 words")]
    requests.post(sim_url + "/_sim/faults", json=[{"kind": "503", "count": 3},
                                                  {"kind": "reset", "count": 1}], timeout=5)
    seen.append(client.models.generate_content(model="gemini-2.5-flash",
                                               contents="after the storm").model_dump_json())
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-nope", contents="hi")
    seen.append(str(caught.value.details))
    requests.post(sim_url + "/_sim/projects/live/state", json={"state": "suspended"}, timeout=5)
    with pytest.raises(errors.APIError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    seen.append(str(caught.value.details))
    time.sleep(0.5)  # let the prober try the disabled keys
    for path in ("/admin/pool", "/healthz"):
        seen.append(requests.get(url + path, headers={"Authorization": f"Bearer {ADMIN}"},
                                 timeout=5).text)
    return seen
