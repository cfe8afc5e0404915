"""Configuration: file, .env, environment and flags, cleaned keys, one message for every problem."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from gemgate.config import ConfigError, clean_key, load_settings

YAML = """
port: 9100
upstream_url: http://127.0.0.1:1
projects:
  - name: alpha
    tier: tier1
    keys: ["alpha-key-1", " 'alpha-key-2' "]
    proxy: socks5://127.0.0.1:1080
  - name: beta
    keys: [beta-key-1]
tenants:
  - {name: app, token: app-token-123}
"""


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "gemgate.yaml"
    path.write_text(YAML)
    settings = load_settings(path, env={}, dotenv=None)
    assert settings.port == 9100
    alpha = settings.projects[0]
    assert (alpha.name, alpha.tier, alpha.proxy) == ("alpha", "tier1", "socks5://127.0.0.1:1080")
    assert alpha.keys == ["alpha-key-1", "alpha-key-2"]  # quotes and spaces cleaned
    assert settings.tenants[0].name == "app"


def test_flags_beat_env_beat_file(tmp_path: Path) -> None:
    path = tmp_path / "gemgate.yaml"
    path.write_text(YAML)
    env = {"GEMGATE_PORT": "9200", "GEMINI_API_KEYS": "p1:k-one,p1:k-two,k-three",
           "GEMGATE_CLIENT_KEYS": "ci:ci-token-000,plain-token-1",
           "GEMGATE_UPSTREAM_URL": "http://127.0.0.1:2/"}
    settings = load_settings(path, env=env, dotenv=None, flags={"port": 9300, "host": None})
    assert settings.port == 9300
    assert settings.upstream_url == "http://127.0.0.1:2"
    assert [(p.name, p.keys) for p in settings.projects] == [("p1", ["k-one", "k-two"]),
                                                               ("key-3", ["k-three"])]
    assert [(t.name, t.token) for t in settings.tenants] == [("ci", "ci-token-000"),
                                                             ("client-2", "plain-token-1")]
    assert {p.tier for p in settings.projects} == {"free"}
    paid = load_settings(None, env={**env, "GEMGATE_TIER": "tier2"}, dotenv=None)
    assert {p.tier for p in paid.projects} == {"tier2"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={**env, "GEMGATE_TIER": "gold"}, dotenv=None)
    assert "tier" in str(caught.value)
    assert load_settings(path, env=env, dotenv=None).port == 9200


def test_dotenv_is_read_but_the_real_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('GEMINI_API_KEYS="dot-key-1"\nGEMGATE_PORT=9400\n')
    settings = load_settings(None, env={"GEMGATE_PORT": "9500"}, dotenv=dotenv)
    assert settings.projects[0].keys == ["dot-key-1"]
    assert settings.port == 9500


@pytest.mark.parametrize(("raw", "clean"), [
    ("  key-1\n", "key-1"), ('"key-2"', "key-2"), ("' key-3 '", "key-3"), ("“key-4”", "key-4")])
def test_keys_are_cleaned(raw: str, clean: str) -> None:
    assert clean_key(raw) == clean


@pytest.mark.parametrize("raw", ["two words", "ke\"y", "", "   "])
def test_malformed_keys_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        clean_key(raw)


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""
host: 0.0.0.0
port: 70000
upstream_url: ftp://nope
retry: {attempts: 0}
projects:
  - name: a
    keys: ["good-key", "bad key"]
    proxy: gopher://x
  - name: a
    keys: [good-key]
""")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={}, dotenv=None)
    text = str(caught.value)
    for needle in ("port", "upstream_url", "retry.attempts", "projects.0.keys: key #2",
                   "projects.0.proxy"):
        assert needle in text
    path.write_text("host: 0.0.0.0\nprojects:\n  - {name: a, keys: [k1]}\n  - {name: a, keys: "
                    "[k1]}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={}, dotenv=None)
    problems = caught.value.problems
    assert any("listed in both" in p for p in problems)
    assert any("used twice" in p for p in problems)
    assert any("beyond loopback needs client tokens" in p for p in problems)
    assert "k1" not in str(caught.value).replace("…", "")  # keys are masked even here


def _gemgate(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen([sys.executable, "-m", "gemgate", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})},
                            cwd=tempfile.mkdtemp(prefix="gemgate-cli-"))  # its gemgate.db


def test_serve_exits_2_on_bad_config_and_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    bad = _gemgate("serve", "--host", "0.0.0.0", env={"GEMINI_API_KEYS": "k-1",
                                                      "GEMGATE_CLIENT_KEYS": ""})
    _, err = bad.communicate(timeout=30)
    assert bad.returncode == 2
    assert "beyond loopback" in err
    none = _gemgate("serve", env={"GEMINI_API_KEYS": ""})
    _, err = none.communicate(timeout=30)
    assert none.returncode == 2 and "no upstream keys" in err


def test_serve_simulate_is_ready_within_a_second() -> None:
    started = time.monotonic()
    server = _gemgate("serve", "--simulate", "--port", "0", env={"GEMINI_API_KEYS": ""})
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        url = re.search(r"listening on (http://\S+)", first)
        assert url, first
        while True:
            try:
                if requests.get(url.group(1) + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.01)
        ready = time.monotonic() - started
        banner = first + "".join(server.stdout.readline() for _ in range(8))
        assert "built-in simulator" in banner and "genai.Client" in banner
        assert ready < 3.0  # the target is 1 s; the bench measures it, CI machines vary
        from tests.conftest import sdk

        # Batch work may not spill into paid quota; 15 requests are more than the free tier's
        # 10 RPM: a demo in front of the simulator is not paced by limits it does not have.
        client = sdk(url.group(1), "any-token", timeout=10_000,
                     headers={"x-gemgate-priority": "batch"})
        for _ in range(15):
            assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    finally:
        server.terminate()
        server.wait(10)
