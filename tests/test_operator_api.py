"""The operator's admin routes the console calls (edges/operator.py): changes to the upstream
pool kept across a restart and shared by replicas, the audit log, the recent requests with
their hints, the effective configuration with every secret masked, the live figures — and
none of it open to a tenant."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gemgate.config import Settings
from gemgate.config.view import effective
from tests.conftest import ADMIN, TOKEN, eventually, run_gateway
from tests.shared_backends import pg_schema, pg_store

FREE_ONE = [{"name": "sim-free", "keys": ["sim-free-key-1"]}]


def _key_of(gateway: Any, project: str, mask: str) -> dict[str, Any]:
    return next(k for k in gateway.project_view(project)["keys"] if k["key"] == mask)


def test_pool_changes_are_applied_at_once_and_kept_across_a_restart(sim: Any,
                                                                   tmp_path: Path) -> None:
    db = str(tmp_path / "gemgate.db")
    with run_gateway(sim.url, FREE_ONE, ledger={"path": db}) as gateway:
        added = gateway.admin("POST", "/admin/upstream/keys", {
            "project": "sim-free", "tier": "free", "tag": "later",
            "keys": "sim-free-key-2\n\n'sim-free-key-2'\nYOUR_API_KEY\n"})
        assert added.status_code == 200, added.text
        verdicts = [(r["key"], r["verdict"]) for r in added.json()["results"]]
        assert verdicts == [("sim-…ey-2", "added"), ("sim-…ey-2", "duplicate"),
                            ("YOUR…_KEY", "refused")]
        new_id = added.json()["results"][0]["id"]
        first = _key_of(gateway, "sim-free", "sim-…ey-1")
        held = gateway.admin("POST", f"/admin/upstream/keys/{first['id']}/disable")
        assert held.status_code == 200 and held.json()["held"] is True
        # In force at once: every request now goes through the added key.
        for _ in range(3):
            assert gateway.admin("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                                 {"contents": [{"parts": [{"text": "hi"}]}]},
                                 token=TOKEN).status_code == 200
        assert _key_of(gateway, "sim-free", "sim-…ey-2")["successes"] == 3
        # The prober does not bring back a key the operator holds.
        probed = gateway.admin("POST", "/admin/upstream/probe").json()["results"]
        assert [(r["key"], r["works"], r["state"]) for r in probed] == \
            [("sim-…ey-1", True, "disabled")]
    with run_gateway(sim.url, FREE_ONE, ledger={"path": db}) as again:
        keys = {k["key"]: k for k in again.project_view("sim-free")["keys"]}
        assert keys["sim-…ey-2"]["tag"] == "later" and keys["sim-…ey-2"]["state"] == "active"
        assert keys["sim-…ey-1"]["held"] is True and keys["sim-…ey-1"]["state"] == "disabled"
        assert again.admin("DELETE", f"/admin/upstream/keys/{new_id}").status_code == 200
        assert again.admin("POST", f"/admin/upstream/keys/{first['id']}/enable").json()[
            "state"] == "active"
        entries = again.admin("GET", "/admin/audit").json()["entries"]
        assert [e["action"] for e in entries][:3] == ["upstream.enable", "upstream.remove",
                                                      "upstream.probe"]
    with run_gateway(sim.url, FREE_ONE, ledger={"path": db}) as third:
        assert [k["key"] for k in third.project_view("sim-free")["keys"]] == ["sim-…ey-1"]
    with sqlite3.connect(db) as connection:
        secrets = connection.execute("SELECT secret FROM upstream_keys").fetchall()
        logged = " ".join(" ".join(map(str, r)) for r in
                          connection.execute("SELECT * FROM audit_log"))
    assert all(secret is None for (secret,) in secrets)  # a removed key's secret is forgotten
    assert "sim-free-key" not in logged and "sim-…ey-2" in logged


def test_bad_pool_changes_are_refused_plainly(gateway: Any) -> None:
    for body, status in (({"project": "a b", "keys": ["k"]}, 400),
                         ({"project": "p", "tier": "gold", "keys": ["k"]}, 400),
                         ({"project": "p", "keys": 7}, 400), ([1, 2], 400)):
        answer = gateway.admin("POST", "/admin/upstream/keys", body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"]["message"]
    missing = gateway.admin("POST", "/admin/upstream/keys/0123456789abcdef/disable")
    assert missing.status_code == 404
    assert missing.json()["error"]["hint"].startswith("No upstream key has this id")


def test_the_operator_routes_are_closed_to_tenants_and_strangers(gateway: Any) -> None:
    for method, path in (("POST", "/admin/upstream/keys"), ("GET", "/admin/requests"),
                         ("GET", "/admin/config"), ("GET", "/admin/live"),
                         ("GET", "/admin/audit"), ("POST", "/admin/upstream/probe"),
                         ("GET", "/admin/upstream")):
        for token in (TOKEN, "", "gg-console-cookie-less"):
            answer = gateway.admin(method, path, {"project": "x", "keys": ["k"]}, token=token)
            assert answer.status_code == 403, (method, path, token)
            assert answer.json()["error"]["status"] == "PERMISSION_DENIED"


def test_recent_requests_are_found_with_their_hints(sim: Any) -> None:
    with run_gateway(sim.url) as gateway:
        ok = gateway.admin("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                           {"contents": [{"parts": [{"text": "hi"}]}]}, token=TOKEN)
        bad = gateway.admin("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                            {"contents": "not a list"}, token=TOKEN)
        assert ok.status_code == 200 and bad.status_code == 400
        found = gateway.admin("GET", "/admin/requests?status=4xx").json()
        assert [r["status"] for r in found["requests"]] == [400]
        assert found["requests"][0]["hint"] and found["more"] is False
        one = gateway.admin("GET", "/admin/requests?limit=1").json()
        assert len(one["requests"]) == 1 and one["more"] is True
        request_id = ok.headers["x-gemgate-request-id"]
        detail = gateway.admin("GET", f"/admin/requests/{request_id}").json()
        assert detail["status"] == 200 and detail["tenant"] == "team"
        assert detail["prompt"] is None  # prompts are not kept unless the operator says so
        assert gateway.admin("GET", "/admin/requests?tenant=nobody").json()["requests"] == []
        refused = gateway.admin("GET", "/admin/requests?status=teapot")
        assert refused.status_code == 400 and "status" in refused.json()["error"]["message"]
        assert gateway.admin("GET", "/admin/requests/none-such").status_code == 404
        live = gateway.admin("GET", "/admin/live").json()
        assert live["requests"] == 2 and live["error_percent"] == 50.0
        assert live["latency_ms"]["p50"] is not None
        assert live["errors_by_problem"]


def test_the_effective_configuration_masks_every_secret() -> None:
    settings = Settings.model_validate({
        "projects": [{"name": "p", "keys": ["AIza" + "k" * 35]}],
        "tenants": [{"name": "t", "token": "gg-tenant-token-123"}],
        "admin_key": "gg-admin-key-45678",
        "state": {"backend": "redis", "url": "redis://:redis-pass-99@cache:6379/0"},
        "store": {"backend": "postgres", "dsn": "postgresql://app:pg-pass-77@db/gemgate"},
        "budgets": {"webhook_url": "https://hooks.example/T000/B000/secret-path-55"},
        "providers": [{"name": "o", "base_url": "https://api.example/v1",
                       "keys": ["sk-provider-key-0011"]}],
        "metrics": {"token": "metrics-token-3344"}})
    shown = str(effective(settings))
    for secret in ("k" * 35, "gg-tenant-token-123", "gg-admin-key-45678", "redis-pass-99",
                   "pg-pass-77", "secret-path-55", "sk-provider-key-0011",
                   "metrics-token-3344"):
        assert secret not in shown, secret
    assert "AIza…kkkk" in shown and "hooks.example" in shown


def test_replicas_sharing_postgres_share_the_pool_changes(sim: Any, tmp_path: Path) -> None:
    with pg_schema() as schema, \
            run_gateway(sim.url, FREE_ONE, store=pg_store(schema, str(tmp_path / "1.db")),
                        ledger={"key_refresh_s": 0.1}) as one, \
            run_gateway(sim.url, FREE_ONE, store=pg_store(schema, str(tmp_path / "2.db")),
                        ledger={"key_refresh_s": 0.1}) as two:
        added = one.admin("POST", "/admin/upstream/keys",
                          {"project": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]})
        assert added.json()["results"][0]["verdict"] == "added"
        eventually(lambda: any(p["project"] == "sim-paid" for p in two.pool_view()), 10,
                   "the other replica never saw the added key")
        key_id = added.json()["results"][0]["id"]
        one.admin("POST", f"/admin/upstream/keys/{key_id}/disable")
        eventually(lambda: two.project_view("sim-paid")["keys"][0]["held"], 10,
                   "the other replica never saw the key held")
        answer = two.admin("POST", "/v1beta/models/gemini-2.5-flash:generateContent",
                           {"contents": [{"parts": [{"text": "hi"}]}]}, token=TOKEN)
        found = one.admin("GET", "/admin/requests?id="
                          + answer.headers["x-gemgate-request-id"]).json()["requests"]
        assert [r["project"] for r in found] == ["sim-free"]  # served by the other replica
        assert [e["action"] for e in two.admin("GET", "/admin/audit").json()["entries"]] == [
            "upstream.disable", "upstream.add"]


@pytest.fixture(scope="module")
def gateway(sim: Any) -> Any:
    with run_gateway(sim.url) as running:
        yield running


assert ADMIN  # the admin key the helpers send
