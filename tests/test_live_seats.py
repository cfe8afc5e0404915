"""Live sessions counted like a quota: each project's concurrent sessions against Google's
limit for it, each tenant's against `live.max_sessions_per_tenant` — on every replica at once
(Redis) — and shown in the console's figures, the upstream view and the metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import requests
from google.genai import errors, types
from websockets.exceptions import ConnectionClosed

from gemgate.simulator import run_simulator
from tests.conftest import ADMIN, eventually, run_gateway
from tests.live_helpers import MODEL, live_client, tls, turn
from tests.shared_backends import redis_prefix, redis_state

CLOSED = (errors.APIError, ConnectionClosed)
TEXT = types.LiveConnectConfig(response_modalities=["TEXT"])
ONE_EACH = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"],
             "live_sessions": 1},
            {"name": "sim-free", "keys": ["sim-free-key-1"], "live_sessions": 1}]


def _get(url: str, cert: Path, path: str) -> Any:
    answer = requests.get(url + path, verify=str(cert), timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN}"})
    answer.raise_for_status()
    return answer.json() if "json" in answer.headers["Content-Type"] else answer.text


def _live_rows(url: str, cert: Path) -> dict[str, tuple[int, int]]:
    return {r["project"]: (r["used"], r["limit"])
            for r in _get(url, cert, "/admin/upstream")["quota"] if r["window"] == "sessions"}


async def _refused(client: Any) -> str:
    try:
        async with client.aio.live.connect(model=MODEL, config=TEXT) as live:
            await turn(live, "one more")
    except CLOSED as refused:
        return str(refused)
    return "not refused"


def test_each_projects_live_sessions_are_bounded_and_shown(tmp_path: Path) -> None:
    cert, server = tls(tmp_path)
    with run_simulator() as sim, run_gateway(sim.url, ONE_EACH, server=server) as gateway:
        client = live_client(gateway.url, cert)

        async def three() -> tuple[str, dict[str, Any], str]:
            async with client.aio.live.connect(model=MODEL, config=TEXT) as one, \
                    client.aio.live.connect(model=MODEL, config=TEXT) as two:
                assert (await turn(one, "hello"))[0] and (await turn(two, "hi"))[0]
                third = await _refused(client)  # both projects hold their one session
                seen = await asyncio.to_thread(_live_rows, gateway.url, cert)
                figures = await asyncio.to_thread(_get, gateway.url, cert, "/admin/live")
                scraped = await asyncio.to_thread(_get, gateway.url, cert, "/metrics")
                assert 'gemgate_live_sessions{model="gemini-2.5-flash"} 2.0' in scraped
                return third, {"rows": seen, "figures": figures}, scraped

        third, seen, scraped = asyncio.run(three())
        assert "LIVE_PROJECTS_FULL" in third
        assert seen["rows"] == {"sim-paid": (1, 1), "sim-free": (1, 1)}
        assert seen["figures"]["live_sessions"] == 2
        assert 'gemgate_quota_used{model="live",project="sim-paid",window="sessions"} 1.0' \
            in scraped
        eventually(lambda: _live_rows(gateway.url, cert) == {"sim-paid": (0, 1),
                                                             "sim-free": (0, 1)},
                   10, "the sessions' seats were not freed")
        scraped = _get(gateway.url, cert, "/metrics")
        assert 'gemgate_live_sessions_ended_total{reason="LIVE_PROJECTS_FULL"}' not in scraped
        assert 'gemgate_live_frames_total{direction="up"}' in scraped
        assert 'gemgate_live_sessions_ended_total{reason="client-or-upstream"} 2.0' in scraped
        assert 'gemgate_live_sessions{model="gemini-2.5-flash"} 0.0' in scraped
        assert any(r["problem"] == "LIVE_PROJECTS_FULL" and r["status"] == 429
                   for r in gateway.ledger("action = 'live'"))


def test_replicas_count_each_others_live_sessions(tmp_path: Path) -> None:
    cert, server = tls(tmp_path)
    projects = [{**ONE_EACH[0], "live_sessions": 5}]
    with run_simulator() as sim, redis_prefix() as prefix, \
            run_gateway(sim.url, projects, server=server, state=redis_state(prefix),
                        live={"max_sessions_per_tenant": 1}) as one, \
            run_gateway(sim.url, projects, server=server, state=redis_state(prefix),
                        live={"max_sessions_per_tenant": 1}) as two:
        async def across() -> tuple[str, dict[str, Any]]:
            async with live_client(one.url, cert).aio.live.connect(model=MODEL,
                                                                  config=TEXT) as live:
                assert (await turn(live, "hello"))[0]
                refused = await _refused(live_client(two.url, cert))
                return refused, await asyncio.to_thread(_live_rows, two.url, cert)

        refused, rows_on_two = asyncio.run(across())
        assert "LIVE_TOO_MANY_SESSIONS" in refused
        assert rows_on_two == {"sim-paid": (1, 5)}  # the other replica's session, counted

        async def after() -> str:  # the seat is freed for every replica
            async with live_client(two.url, cert).aio.live.connect(model=MODEL,
                                                                  config=TEXT) as live:
                return (await turn(live, "now me"))[0]

        assert asyncio.run(after())
