"""What a new user trips over on the first run: the open loopback mode, the admin key of the
quick start, keys that --simulate ignores, config mistakes, budgets, and Chinese output."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from gemgate.cli import main
from gemgate.config import ConfigError, load_settings
from gemgate.logs import setup_logging
from gemgate.simulator import RunningSimulator
from tests.conftest import run_gateway

HI = {"contents": [{"parts": [{"text": "hi"}]}]}


def _generate(url: str, token: str) -> int:
    return requests.post(url + "/v1beta/models/gemini-2.5-flash:generateContent", json=HI,
                         headers={"x-goog-api-key": token}, timeout=10).status_code


def test_open_loopback_mode_changes_only_with_a_logged_reason(sim: RunningSimulator) -> None:
    stream = io.StringIO()
    setup_logging("INFO", [], stream=stream)
    try:
        with run_gateway(sim.url, tenants=[]) as gateway:
            assert _generate(gateway.url, "any-token") == 200
            secret, view = gateway.new_key(name="first")
            assert _generate(gateway.url, "any-token") == 401
            assert _generate(gateway.url, secret) == 200
            time.sleep(0.1)
            assert "open loopback mode is OFF" in stream.getvalue()
            assert gateway.admin("POST", f"/admin/vkeys/{view['id']}/revoke").status_code == 200
            assert _generate(gateway.url, "any-token") == 200  # open again, and said so
            time.sleep(0.1)
            assert "open loopback mode is ON again" in stream.getvalue()
    finally:
        setup_logging("INFO", [])


@contextmanager
def _serve(*args: str, env: dict[str, str], cwd: str) -> Iterator[tuple[str, str]]:
    """`gemgate serve …` as a user runs it; (its URL, its banner)."""
    server = subprocess.Popen([sys.executable, "-m", "gemgate", "serve", "--port", "0", *args],
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "GEMINI_API_KEYS": "", "GEMGATE_ADMIN_KEY": "",
                                   **env}, cwd=cwd)
    try:
        assert server.stdout is not None
        lines = []
        while not lines or "print(client" not in lines[-1]:
            line = server.stdout.readline()
            assert line, server.stderr.read() if server.stderr else ""
            lines.append(line)
        banner = "".join(lines)
        url = re.search(r"listening on (http://\S+)", banner)
        assert url, banner
        yield url.group(1), banner
    finally:
        server.terminate()
        server.wait(10)


def test_serve_simulate_prints_an_admin_key_that_works_and_names_ignored_keys() -> None:
    workdir = tempfile.mkdtemp(prefix="gemgate-first-")
    with _serve("--simulate", env={"GEMINI_API_KEYS": "k-one-000001,k-two-000002"},
                cwd=workdir) as (url, banner):
        admin = re.search(r"admin key \(shown once, masked in logs\): (\S+)", banner)
        assert admin, banner
        pool = requests.get(url + "/admin/pool", timeout=5,
                            headers={"Authorization": f"Bearer {admin.group(1)}"})
        assert pool.status_code == 200
        assert "2 configured upstream key(s)" in banner and "ignored" in banner
        assert "pip install google-genai" in banner


def test_serve_reads_gemgate_yaml_from_the_working_directory(sim: RunningSimulator) -> None:
    workdir = tempfile.mkdtemp(prefix="gemgate-yaml-")
    Path(workdir, "gemgate.yaml").write_text(yaml.safe_dump({
        "upstream_url": sim.url, "admin_key": "gg-admin-from-yaml-1",
        "tenants": [{"name": "t", "token": "gg-token-from-yaml-1"}],
        "projects": [{"name": "p", "keys": ["sim-free-key-1"]}]}))
    with _serve(env={}, cwd=workdir) as (url, banner):
        assert "gg-token-from-yaml-1" not in banner
        assert _generate(url, "gg-token-from-yaml-1") == 200


def test_config_mistakes_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "gemgate.yaml"
    path.write_text("projets:\n  - name: a\nretry:\n  atempts: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={}, dotenv=None, require_keys=False)
    text = str(caught.value)
    assert "did you mean `projects`?" in text and "did you mean `attempts`?" in text
    path.write_text("projects:\n  - name: a\n   keys: [x]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={}, dotenv=None)
    assert f"{path}:3:" in str(caught.value) and "YAML syntax error" in str(caught.value)
    for placeholder in ("AIza...one", "YOUR_API_KEY", "AIzaSyShort"):
        path.write_text(yaml.safe_dump({"projects": [{"name": "a", "keys": [placeholder]}]}))
        with pytest.raises(ConfigError) as caught:
            load_settings(path, env={}, dotenv=None)
        assert "placeholder" in str(caught.value), placeholder


def test_vkeys_show_spend_and_exhausted_budgets(sim: RunningSimulator) -> None:
    paid = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(sim.url, paid) as gateway:
        secret, _ = gateway.new_key(name="tiny", daily_budget_usd=0.000001)
        assert _generate(gateway.url, secret) == 200
        assert _generate(gateway.url, secret) == 429  # the budget bites (a paid project)
        db = gateway.db_path
    runner = CliRunner()
    listed = runner.invoke(main, ["vkeys", "list", "--db", db])
    assert listed.exit_code == 0, listed.output
    assert "exhausted (daily)" in listed.output and "/1e-06" in listed.output
    shown = runner.invoke(main, ["vkeys", "show", "tiny", "--db", db, "--json"])
    spending = json.loads(shown.output)["spending"]["daily"]
    assert spending["spent_usd"] > spending["budget_usd"] and spending["remaining_usd"] == 0
    assert json.loads(shown.output)["status"] == "exhausted (daily)"
    first = runner.invoke(main, ["vkeys", "revoke", "tiny", "--db", db])
    assert first.exit_code == 0
    again = runner.invoke(main, ["vkeys", "revoke", "tiny", "--db", db])
    assert again.exit_code != 0 and "already revoked" in again.output
    table = runner.invoke(main, ["usage", "--by", "day", "--tz", "Asia/Shanghai", "--db", db])
    assert "(Asia/Shanghai)" in table.output and "(UTC)" not in table.output


def test_doctor_rows_follow_the_locale(sim: RunningSimulator, tmp_path: Path) -> None:
    env = {"GEMINI_API_KEYS": "sim-free-key-1", "GEMGATE_UPSTREAM_URL": sim.url,
           "LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "LANGUAGE": ""}
    done = subprocess.run([sys.executable, "-m", "gemgate", "doctor"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path)
    rows = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    assert any("环境" in row for row in rows) and any("密钥" in row for row in rows), done.stdout
    assert not any(" environment " in row or " network " in row for row in rows)


def test_the_simulator_fixture_raises_no_warnings() -> None:
    from gemgate.simulator import build_app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_app()
    assert not [w for w in caught if "AppKey" in type(w.message).__name__], caught

