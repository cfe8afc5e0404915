"""Hedged requests through the real SDK: a slow first attempt is raced by a second project,
the winner answers, the loser is cancelled and billed; hedging never breaks quota admission
and stays off unless configured."""

from __future__ import annotations

import time
from typing import Any

from gemgate.simulator import run_simulator
from tests.conftest import TOKEN, eventually, run_gateway, sdk

MODEL = "gemini-2.5-flash"
SLOW_MS = 1500
HEDGING = {"enabled": True, "min_samples": 10, "max_extra_share": 1.0}


def _calls(sim: Any) -> int:
    return sum(int(row["requests"]) for row in sim.stats()["by_key"].values())


def _timed(client: Any, text: str) -> float:
    started = time.perf_counter()
    assert client.models.generate_content(model=MODEL, contents=text).text
    return time.perf_counter() - started


def test_a_slow_attempt_is_hedged_to_another_project_and_both_are_billed() -> None:
    with run_simulator() as sim, run_gateway(sim.url, hedging=HEDGING) as gateway:
        client = sdk(gateway.url, TOKEN)
        for n in range(20):  # the model's recent latencies: fast
            _timed(client, f"warm-up {n}")
        _timed(client, "the same question")  # unhedged: what one answer costs
        plain = gateway.ledger()[-1]
        sim.add_fault(kind="latency", delay_ms=SLOW_MS, project="sim-free")
        before = _calls(sim)
        took = [_timed(client, "the same question") for _ in range(6)]
        assert max(took) < SLOW_MS / 1000 / 2, took  # never waited for the slow project
        rows = gateway.ledger()[-6:]
        hedged = [r for r in rows if "HEDGE_CANCELLED" in (r["attempt_log"] or "")]
        assert hedged, rows  # sim-free was picked first, and then raced
        eventually(lambda: _calls(sim) - before == 6 + len(hedged), 10,  # real calls, each
                   "the simulator did not see every hedge")  # counted when it answers
        for row in hedged:
            assert row["attempts"] == 2 and row["project"] == "sim-paid"
            # The loser's prompt is billed besides the winner's whole answer.
            assert row["prompt_tokens"] > plain["prompt_tokens"]
            assert row["cost_usd"] > plain["cost_usd"]
        scraped = gateway.admin("GET", "/metrics").text
        assert 'outcome="HEDGE_CANCELLED"' in scraped


def test_a_hedge_needs_quota_room_now_and_hedging_is_off_by_default() -> None:
    tight = [{"name": "sim-free", "keys": ["sim-free-key-1"]},
             {"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"],
              "limits": {"*": {"rpm": 1}}}]
    with run_simulator() as sim, run_gateway(sim.url, tight, hedging=HEDGING) as gateway:
        client = sdk(gateway.url, TOKEN)
        for n in range(20):  # free projects first: all on sim-free
            _timed(client, f"warm-up {n}")
        free_key = gateway.project_view("sim-free")["keys"][0]["id"]
        gateway.admin("POST", f"/admin/upstream/keys/{free_key}/disable")
        _timed(client, "fills sim-paid's minute")  # its one request per minute
        gateway.admin("POST", f"/admin/upstream/keys/{free_key}/enable")
        assert gateway.ledger()[-1]["project"] == "sim-paid"
        sim.add_fault(kind="latency", delay_ms=SLOW_MS, project="sim-free")
        before = _calls(sim)
        assert _timed(client, "no room for a hedge") >= SLOW_MS / 1000
        assert _calls(sim) - before == 1
        assert gateway.ledger()[-1]["attempts"] == 1
    with run_simulator() as sim, run_gateway(sim.url) as gateway:
        client = sdk(gateway.url, TOKEN)
        for n in range(12):
            _timed(client, f"warm-up {n}")
        sim.add_fault(kind="latency", delay_ms=SLOW_MS, project="sim-free")
        took = [_timed(client, "unhedged") for _ in range(2)]
        assert max(took) >= SLOW_MS / 1000  # one of them waited for the slow project
        assert all(r["attempts"] == 1 for r in gateway.ledger())
