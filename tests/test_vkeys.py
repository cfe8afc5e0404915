"""Virtual keys through the admin API, the CLI and the real SDK: each right refused with its own
clear error, changes effective at once, secrets never shown twice nor stored."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.genai import errors

from gemgate.simulator import RunningSimulator
from tests.conftest import ADMIN, TOKEN, RunningGateway, post, run_gateway, sdk

GENERATE = "/v1beta/models/gemini-2.5-flash-lite:generateContent"
HELLO = {"contents": [{"parts": [{"text": "hello"}]}]}


@pytest.fixture()
def gw(sim: RunningSimulator) -> Iterator[RunningGateway]:
    with run_gateway(sim.url) as running:
        yield running


def refusal(gw: RunningGateway, secret: str, path: str = GENERATE,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    answer = post(gw.url + path, HELLO, key=secret, headers=headers)
    return answer.status_code, answer.json()


def test_admin_api_creates_lists_updates_rotates_and_revokes(gw: RunningGateway) -> None:
    secret, view = gw.new_key(name="alice", owner="alice@example.com",
                              models=["gemini-2.5-flash*"], rpm=100, tpm=100_000,
                              daily_budget_usd=5, monthly_budget_usd=50, priority="high",
                              ip_allow=["127.0.0.0/8"], metadata={"team": "search"})
    assert secret.startswith("gk-") and len(secret) > 30
    assert view["key"] == f"{secret[:4]}…{secret[-4:]}" and view["status"] == "active"
    assert view["spent_usd"] == {"daily": 0.0, "monthly": 0.0}
    listed = gw.admin("GET", "/admin/vkeys").json()["keys"]
    assert [k["name"] for k in listed] == ["alice"] and "secret" not in listed[0]
    assert secret not in gw.admin("GET", f"/admin/vkeys/{view['id']}").text
    assert gw.admin("GET", "/admin/vkeys/alice").json()["id"] == view["id"]  # by name too

    client = sdk(gw.url, secret)
    assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text

    patched = gw.admin("PATCH", f"/admin/vkeys/{view['id']}", {"rpm": 7, "owner": "a@b.c"})
    assert patched.status_code == 200
    assert (patched.json()["rpm"], patched.json()["owner"], patched.json()["tpm"]) == (
        7, "a@b.c", 100_000)  # what the patch does not name stays

    rotated = gw.admin("POST", f"/admin/vkeys/{view['id']}/rotate").json()
    new_secret = rotated.pop("secret")
    assert new_secret != secret and rotated["id"] == view["id"]
    assert refusal(gw, secret)[0] == 401  # the old secret stops at once
    assert post(gw.url + GENERATE, HELLO, key=new_secret).status_code == 200

    revoked = gw.admin("DELETE", f"/admin/vkeys/{view['id']}")
    assert revoked.json()["status"] == "revoked"
    status, body = refusal(gw, new_secret)
    assert status == 401 and "revoked" in body["error"]["message"]
    assert body["error"]["hint"]
    assert gw.admin("GET", "/admin/vkeys").json()["keys"] == []
    assert len(gw.admin("GET", "/admin/vkeys?revoked=1").json()["keys"]) == 1
    # the name is free again for a new key; the revoked one cannot be changed
    assert gw.admin("POST", "/admin/vkeys", {"name": "alice"}).status_code == 201
    assert gw.admin("PATCH", f"/admin/vkeys/{view['id']}", {"rpm": 1}).status_code == 409


def test_admin_api_refuses_bad_input_and_non_admins(gw: RunningGateway) -> None:
    secret, view = gw.new_key()
    for token in (TOKEN, secret, "wrong", ""):
        for method, path in (("GET", "/admin/vkeys"), ("POST", "/admin/vkeys"),
                             ("GET", "/admin/usage"), ("DELETE", f"/admin/vkeys/{view['id']}"),
                             ("GET", "/admin/pool")):
            answer = gw.admin(method, path, {"name": "x"}, token=token)
            assert answer.status_code == 403, (token, method, path)
            assert answer.json()["error"]["status"] == "PERMISSION_DENIED"
    bad = gw.admin("POST", "/admin/vkeys", {"name": "x", "rpm": -1, "ip_allow": ["nope"],
                                            "colour": "red"})
    assert bad.status_code == 400
    message = bad.json()["error"]["message"]
    assert "rpm" in message and "nope" in message and "colour" in message
    assert gw.admin("POST", "/admin/vkeys", {"name": "member"}).status_code == 409  # taken
    assert gw.admin("GET", "/admin/vkeys/vk_nothing").status_code == 404
    not_json = gw.admin("PATCH", f"/admin/vkeys/{view['id']}", None)
    assert not_json.status_code == 200  # an empty patch changes nothing
    assert gw.admin("GET", "/admin/usage?by=colour").status_code == 400


def test_each_right_is_refused_with_its_own_error(gw: RunningGateway) -> None:
    limited, _ = gw.new_key(name="flash-only", models=["gemini-2.5-flash-lite"])
    status, body = refusal(gw, limited, "/v1beta/models/gemini-2.5-pro:generateContent")
    assert status == 403 and "may not use model gemini-2.5-pro" in body["error"]["message"]
    assert refusal(gw, limited)[0] == 200

    elsewhere, _ = gw.new_key(name="office", ip_allow=["10.0.0.0/8"])
    status, body = refusal(gw, elsewhere)
    assert status == 403 and "IP address" in body["error"]["message"]

    expired, _ = gw.new_key(name="old", expires_at="2020-01-01T00:00:00Z")
    status, body = refusal(gw, expired)
    assert status == 401 and "expired" in body["error"]["message"]

    off, view = gw.new_key(name="off", enabled=False)
    assert refusal(gw, off)[0] == 403
    gw.admin("PATCH", f"/admin/vkeys/{view['id']}", {"enabled": True})
    assert refusal(gw, off)[0] == 200  # at once


def test_expiry_takes_effect_at_its_moment(gw: RunningGateway) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    secret, _ = gw.new_key(expires_at=soon)
    assert refusal(gw, secret)[0] == 200
    time.sleep(1.6)
    assert refusal(gw, secret)[0] == 401


def test_key_rate_limit_is_a_429_with_retry_info_through_the_sdk(gw: RunningGateway) -> None:
    secret, _ = gw.new_key(rpm=2)
    client = sdk(gw.url, secret)
    for _ in range(2):
        client.models.generate_content(model="gemini-2.5-flash-lite", contents="hi")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash-lite", contents="hi")
    assert caught.value.code == 429
    details = caught.value.details["error"]["details"]
    delay = next(d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo"))
    assert 0 < float(delay.rstrip("s")) <= 61  # a minute, counted in 1-second buckets
    assert "own rate limit" in caught.value.details["error"]["message"]
    # the key's limit is its own: the team's configured token is not slowed by it
    assert post(gw.url + GENERATE, HELLO, key=TOKEN).status_code == 200


def test_key_tpm_limit_counts_input_tokens(gw: RunningGateway) -> None:
    secret, _ = gw.new_key(tpm=50)
    long_prompt = {"contents": [{"parts": [{"text": "word " * 150}]}]}
    answer = post(gw.url + GENERATE, long_prompt, key=secret)
    assert answer.status_code == 429 and "TPM 50" in answer.json()["error"]["message"]
    assert post(gw.url + GENERATE, HELLO, key=secret).status_code == 200


def test_trusted_proxy_forwards_the_client_address(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, trusted_proxies=["127.0.0.1/32"]) as gw:
        secret, _ = gw.new_key(ip_allow=["203.0.113.0/24"])
        inside = {"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}
        assert refusal(gw, secret, headers=inside)[0] == 200
        assert refusal(gw, secret, headers={"X-Forwarded-For": "198.51.100.1"})[0] == 403
        assert refusal(gw, secret)[0] == 403  # the proxy itself is not the client
    with run_gateway(sim.url) as untrusting:
        secret, _ = untrusting.new_key(ip_allow=["203.0.113.0/24"])
        assert refusal(untrusting, secret, headers=inside)[0] == 403  # not believed


def test_static_tokens_still_work_beside_virtual_keys(gw: RunningGateway) -> None:
    gw.new_key()
    client = sdk(gw.url, TOKEN)
    assert client.models.generate_content(model="gemini-2.5-flash-lite", contents="hi").text
    assert gw.ledger()[-1]["tenant"] == "team" and gw.ledger()[-1]["vkey_id"] is None


def test_the_secret_is_stored_only_as_a_hash(gw: RunningGateway) -> None:
    secret, view = gw.new_key()
    post(gw.url + GENERATE, HELLO, key=secret)
    from pathlib import Path

    stored = b"".join(p.read_bytes() for p in Path(gw.db_path).parent.iterdir())
    assert secret.encode() not in stored and secret[3:].encode() not in stored
    import hashlib

    assert hashlib.sha256(secret.encode()).hexdigest().encode() in stored
    assert gw.ledger()[-1]["vkey_id"] == view["id"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gemgate", *args], capture_output=True,
                          text=True, timeout=60)


def test_cli_changes_reach_a_running_gateway(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, ledger={"key_refresh_s": 0.2}) as gw:
        made = _cli("vkeys", "create", "carol", "--owner", "carol@example.com", "--model",
                    "gemini-2.5-flash*", "--daily-budget", "3", "--expires", "30d", "--meta",
                    "team=ops", "--db", gw.db_path, "--json")
        assert made.returncode == 0, made.stderr
        import json

        created = json.loads(made.stdout)
        secret = created["secret"]
        assert created["models"] == ["gemini-2.5-flash*"] and created["metadata"] == {
            "team": "ops"}

        def status_soon(expected: int) -> int:
            deadline = time.monotonic() + 5
            while True:
                status = refusal(gw, secret)[0]
                if status == expected or time.monotonic() > deadline:
                    return status
                time.sleep(0.05)

        assert status_soon(200) == 200
        listed = _cli("vkeys", "list", "--db", gw.db_path)
        assert "carol" in listed.stdout and secret not in listed.stdout
        assert created["key"] in listed.stdout
        assert _cli("vkeys", "update", "carol", "--disable", "--db", gw.db_path).returncode == 0
        assert status_soon(403) == 403
        assert _cli("vkeys", "update", "carol", "--enable", "--db", gw.db_path).returncode == 0
        assert status_soon(200) == 200
        rotated = _cli("vkeys", "rotate", "carol", "--db", gw.db_path)
        assert rotated.returncode == 0 and "shown this once" in rotated.stdout
        assert status_soon(401) == 401
        assert _cli("vkeys", "revoke", "carol", "--db", gw.db_path).returncode == 0
        missing = _cli("vkeys", "show", "carol", "--db", gw.db_path)
        assert missing.returncode == 1 and "no virtual key" in missing.stderr
        bad = _cli("vkeys", "create", "dave", "--ip", "not-an-ip", "--db", gw.db_path)
        assert bad.returncode == 1 and "not-an-ip" in bad.stderr


def test_admin_key_is_required_for_the_admin_api_even_on_loopback(
        sim: RunningSimulator) -> None:
    with run_gateway(sim.url, admin_key=None) as gw:
        assert gw.admin("GET", "/admin/vkeys").status_code == 403
        assert gw.admin("GET", "/admin/vkeys", token="").status_code == 403
    assert ADMIN  # the usual gateways do have one
