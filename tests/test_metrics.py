"""Metrics against a real Prometheus server (Debian's `prometheus`; `.ci/run` installs it): it
scrapes a gateway under mixed traffic, and every PromQL expression of the dashboard and of the
alert rules is evaluated through its HTTP API."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from gemgate.simulator import run_simulator
from tests.conftest import TOKEN, run_gateway
from tests.shared_backends import pg_schema, pg_store

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "gemgate.json"
FLASH = "gemini-2.5-flash"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def prometheus(target: str) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is needed (apt-get install prometheus); `bash .ci/run` installs it")
    folder = Path(tempfile.mkdtemp(prefix="gemgate-prom-"))
    shutil.copy(RULES, folder / "alerts.yml")
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(folder / "alerts.yml")],
        "scrape_configs": [{"job_name": "gemgate", "static_configs": [{"targets": [target]}]}]}))
    port = _free_port()
    server = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                               f"--storage.tsdb.path={folder / 'data'}",
                               f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _query(url: str, expr: str) -> list[Any]:
    answer = requests.get(url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def _rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def _base(expr: str) -> str:
    """An alert's expression without its threshold (what must have data to compare)."""
    expr = re.split(r"\s+and\s+", expr)[0]
    return re.sub(r"\s*(==|>=|<=|>|<)\s*[\d.]+\s*$", "", expr.strip())


def _traffic(sim: Any, gateway: Any, secret: str) -> None:
    def generate(model: str = FLASH, text: str = "hi", token: str = TOKEN,
                 stream: bool = False, **headers: str) -> requests.Response:
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body: dict[str, Any] = {"contents": [{"parts": [{"text": text}]}]}
        if text.startswith("cached"):
            body["generationConfig"] = {"temperature": 0}
        return requests.post(f"{gateway.url}/v1beta/models/{model}:{action}", json=body,
                             timeout=30, headers={"x-goog-api-key": token, **headers})

    for n in range(6):
        assert generate(text=f"plain {n}").status_code == 200
    assert generate(stream=True).status_code == 200
    assert generate(text="cached one").headers["x-gemgate-cache"] == "MISS"
    assert generate(text="cached one").headers["x-gemgate-cache"] == "HIT"
    assert generate(token=secret).status_code == 200  # a virtual key with a budget
    with ThreadPoolExecutor(4) as pool:  # two of these wait for quota room
        assert all(a.status_code == 200 for a in pool.map(
            lambda n: generate("gemini-2.0-flash", f"queued {n}"), range(4)))
    # No room within a short deadline: gemgate's own refusal.
    refused = generate("gemini-2.0-flash", "refused", **{"X-Server-Timeout": "0.3"})
    assert refused.status_code == 429
    sim.add_fault(kind="503", model="gemini-2.5-pro")
    sim.add_fault(kind="503", model="gemini-2.5-flash-lite")
    try:
        assert generate("gemini-2.5-pro").headers["x-gemgate-model"] == FLASH  # fell back
        storm = generate("gemini-2.5-flash-lite", **{"x-gemgate-fallback": "off"})
        assert storm.status_code == 503
    finally:
        sim.clear_faults()
    sim.add_fault(kind="429", count=2, retry_after_s=1)
    generate(text="after a 429")
    sim.clear_faults()


def test_prometheus_scrapes_and_every_dashboard_and_alert_expression_has_data(
        tmp_path: Path) -> None:
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"],
                 "limits": {"*": {"rpm": 1000, "tpm": 10**8, "rpd": 10**7},
                            "gemini-2.0-flash": {"rpm": 2, "tpm": 10**8, "rpd": 10**7}}},
                {"name": "dead", "tier": "tier1", "keys": ["not-a-real-key-9"]}]
    with pg_schema() as schema, run_simulator() as sim, run_gateway(
            sim.url, projects, store=pg_store(schema, str(tmp_path / "spool.db")),
            scheduling={"minute_s": 2.0, "margin_s": 0.2},
            fallback={"gemini-2.5-pro": [FLASH]}) as gateway:
        secret, _ = gateway.new_key(daily_budget_usd=0.001)
        _traffic(sim, gateway, secret)
        target = gateway.url.removeprefix("http://")
        with prometheus(target) as url:
            deadline = time.monotonic() + 20
            while not _query(url, "gemgate_requests_total"):
                assert time.monotonic() < deadline, "never scraped"
                time.sleep(0.2)
            time.sleep(3)  # a few scrapes: rates and increases need two samples
            empty = [e for e in _dashboard_exprs() if not _query(url, e)]
            assert not empty, f"dashboard expressions with no data: {empty}"
            for expr in _rule_exprs():
                _query(url, expr)  # parses and evaluates
                assert _query(url, _base(expr)), f"no data for the alert's {_base(expr)!r}"
            rules = requests.get(url + "/api/v1/rules", timeout=10).json()
            assert rules["status"] == "success"
            assert all(r["health"] == "ok" for g in rules["data"]["groups"] for r in g["rules"])
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _scraped(url: str) -> dict[str, float]:
    """Sums of each metric over its label sets, from the gateway's own /metrics."""
    sums: dict[str, float] = {}
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            base = name.split("{", 1)[0]
            sums[base] = sums.get(base, 0.0) + float(value)
    return sums


def test_metrics_agree_with_the_ledger() -> None:
    with run_simulator() as sim, run_gateway(
            sim.url, [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    ) as gateway:
        for n in range(5):
            requests.post(f"{gateway.url}/v1beta/models/{FLASH}:generateContent",
                          json={"contents": [{"parts": [{"text": f"count me {n}"}]}]},
                          headers={"x-goog-api-key": TOKEN}, timeout=10)
        requests.post(f"{gateway.url}/v1beta/models/{FLASH}:streamGenerateContent",
                      params={"alt": "sse"}, json={"contents": [{"parts": [{"text": "s"}]}]},
                      headers={"x-goog-api-key": TOKEN}, timeout=10)
        rows = gateway.ledger()
        scraped = _scraped(gateway.url)
        assert scraped["gemgate_requests_total"] == len(rows) == 6
        tokens = sum(r["prompt_tokens"] + r["candidates_tokens"] + r["thoughts_tokens"]
                     for r in rows)
        assert scraped["gemgate_tokens_total"] == tokens > 0
        assert abs(scraped["gemgate_cost_usd_total"] - sum(r["cost_usd"] for r in rows)) < 1e-9


def test_a_scrape_with_1000_tenants_and_200_keys_is_small_and_quick() -> None:
    from gemgate.core.call import Call, Tenant
    from gemgate.core.events import Events, Finished
    from gemgate.metrics import Metrics, StateCollector
    from gemgate.prices import PriceBook, Tokens

    events = Events()
    prices = PriceBook()
    metrics = Metrics(events, lambda call, tokens: prices.cost(call.model, tokens))
    projects = [{"project": f"project-{p}", "state": "active", "cooling": {"gemini-2.5-pro": 3},
                 "keys": [{"key": f"AIza…{p:02d}{k:02d}", "state": "active"}
                          for k in range(10)]} for p in range(20)]
    metrics.add_collector(StateCollector(lambda: {
        "projects": projects,
        "quota": {(f"project-{p}", m, w): (5, 10) for p in range(20)
                  for m in ("gemini-2.5-flash", "gemini-2.5-pro") for w in ("rpm", "tpm")},
        "budgets": {(f"key-{n}", "daily"): 0.5 for n in range(1000)},
        "ledger_backlog": 0, "shared": []}))
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 20}

    async def traffic() -> None:
        for n in range(1000):
            for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
                call = Call(request_id=str(n), method="POST", version="v1beta", path="",
                            query="", headers={}, body=b"", tenant=Tenant(f"tenant-{n}"),
                            model=model, action="generateContent")
                await events.finished(call, Finished(200, None, usage))

    import asyncio

    asyncio.run(traffic())
    metrics.flush()  # what the second's flush does: the scrape below measures the scrape
    started = time.perf_counter()
    body = metrics.scrape()
    took = time.perf_counter() - started
    assert len(body) < 1_000_000, len(body)
    assert took < 0.05, took
    assert b'tenant="other"' in body and b'tenant="tenant-999"' not in body  # bounded
    assert Tokens  # imported for the cost function's type
