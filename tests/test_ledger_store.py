"""The ledger's database on its own: migrations, exact reports over rollups, pruning, prices,
and `gemgate usage` / `/admin/usage` output."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gemgate.ledger.record import Record
from gemgate.prices import Price, PriceBook, Tokens, cost_of
from gemgate.simulator import RunningSimulator
from gemgate.storage.sqlite import reports
from gemgate.storage.sqlite.ledger import Ledger, prune, write_batch
from gemgate.storage.sqlite.schema import MIGRATIONS, SchemaError, connect
from tests.conftest import TOKEN, post, run_gateway

NOW = 1_790_000_000.0  # a fixed moment, so reports are reproducible


def record(ts: float, n: int, rng: random.Random, **fields: Any) -> Record:
    prompt, output = rng.randint(1, 5000), rng.randint(0, 2000)
    status = rng.choice([200, 200, 200, 429, 503])
    base: dict[str, Any] = dict(
        ts=ts, request_id=f"r{n}", tenant=rng.choice(["ana", "ben", "cai"]), vkey_id=None,
        provider="gemini", project=rng.choice(["p1", "p2"]), key_mask="AIza…abcd",
        model_asked="gemini-2.5-flash", model_used=rng.choice(["gemini-2.5-flash",
                                                               "gemini-2.5-pro"]),
        action="generateContent", status=status, problem=None,
        prompt_tokens=prompt if status == 200 else 0,
        candidates_tokens=output if status == 200 else 0, thoughts_tokens=0, cached_tokens=0,
        tool_tokens=0, total_tokens=(prompt + output) if status == 200 else 0,
        cost_usd=round((prompt * 0.3 + output * 2.5) / 1e6, 9) if status == 200 else 0.0,
        latency_ms=10.0, stream=False, cancelled=False, attempts=1, attempt_log=None,
        priority="normal", client_ip="127.0.0.1")
    return Record(**{**base, **fields})


@pytest.fixture()
def filled(tmp_path: Path) -> tuple[sqlite3.Connection, list[Record]]:
    rng = random.Random(7)
    db = connect(tmp_path / "ledger.db")
    rows = [record(NOW - rng.uniform(0, 10 * 86400), n, rng) for n in range(5000)]
    for start in range(0, len(rows), 700):
        write_batch(db, rows[start:start + 700])
    return db, rows


def test_migrations_are_versioned_and_refuse_a_newer_database(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    connect(tmp_path / "a.db").close()  # opening again applies nothing and breaks nothing
    newer = sqlite3.connect(tmp_path / "a.db")
    newer.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    newer.close()
    with pytest.raises(SchemaError, match="newer than this gemgate"):
        connect(tmp_path / "a.db")


def test_a_record_written_twice_counts_once(tmp_path: Path) -> None:
    db = connect(tmp_path / "b.db")
    rng = random.Random(1)
    first = [record(NOW, n, rng, status=200) for n in range(3)]
    assert write_batch(db, first) == 3
    assert write_batch(db, [first[1], record(NOW, 9, rng)]) == 1  # a retried batch
    count, requests = db.execute("SELECT (SELECT COUNT(*) FROM requests), "
                                 "(SELECT SUM(requests) FROM usage_rollup)").fetchone()
    assert count == requests == 4


@pytest.mark.parametrize("by", reports.GROUPS)
def test_reports_equal_the_sum_of_the_rows(filled: tuple[sqlite3.Connection, list[Record]],
                                           by: str) -> None:
    """Whatever the range's edges, rollup plus edge rows give exactly the rows' own sums."""
    db, rows = filled
    rng = random.Random(by)
    for _ in range(6):
        since = NOW - rng.uniform(0, 11 * 86400)
        until = rng.uniform(since + 1, NOW + 60)
        report = reports.usage_report(db, by, since, until, "Asia/Shanghai")
        inside = [r for r in rows if since <= r.ts < until]
        assert report.totals["requests"] == len(inside)
        assert report.totals["errors"] == sum(r.status >= 400 for r in inside)
        assert report.totals["total_tokens"] == sum(r.total_tokens for r in inside)
        assert report.totals["cost_usd"] == pytest.approx(sum(r.cost_usd for r in inside),
                                                          abs=1e-9)
        if by == "tenant":
            for row in report.rows:
                mine = [r for r in inside if r.tenant == row["tenant"]]
                assert row["requests"] == len(mine)
                assert row["prompt_tokens"] == sum(r.prompt_tokens for r in mine)


def test_days_are_counted_in_the_configured_time_zone(tmp_path: Path) -> None:
    db = connect(tmp_path / "c.db")
    rng = random.Random(3)
    # 2026-11-20 23:30 and 2026-11-21 00:30 in Shanghai (UTC+8): two days there, one in UTC
    late, early = 1_795_188_600.0, 1_795_192_200.0
    write_batch(db, [record(late, 1, rng, status=200), record(early, 2, rng, status=200)])
    shanghai = reports.usage_report(db, "day", late - 3600, early + 3600, "Asia/Shanghai")
    assert [r["day"] for r in shanghai.rows] == ["2026-11-20", "2026-11-21"]
    utc = reports.usage_report(db, "day", late - 3600, early + 3600, "UTC")
    assert [(r["day"], r["requests"]) for r in utc.rows] == [("2026-11-20", 2)]


def test_filters_and_bad_arguments(filled: tuple[sqlite3.Connection, list[Record]]) -> None:
    db, rows = filled
    report = reports.usage_report(db, "model", NOW - 20 * 86400, NOW + 1, tenant="ana",
                                  project="p2")
    assert report.totals["requests"] == sum(r.tenant == "ana" and r.project == "p2"
                                            for r in rows)
    with pytest.raises(reports.ReportError):
        reports.usage_report(db, "colour", NOW - 10, NOW)
    with pytest.raises(reports.ReportError):
        reports.usage_report(db, "tenant", NOW, NOW - 10)
    with pytest.raises(reports.ReportError):
        reports.parse_when("last tuesday")
    assert reports.parse_when("7d", NOW) == NOW - 7 * 86400
    assert reports.parse_when("2026-11-01") == 1_793_491_200.0


def test_pruning_removes_old_rows_and_keeps_the_totals(
        filled: tuple[sqlite3.Connection, list[Record]]) -> None:
    db, rows = filled
    before = reports.usage_report(db, "tenant", NOW - 20 * 86400, NOW + 1)
    removed = prune(db, NOW - 3 * 86400)
    assert removed == sum(r.ts < NOW - 3 * 86400 for r in rows)
    assert db.execute("SELECT MIN(ts) FROM requests").fetchone()[0] >= NOW - 3 * 86400
    after = reports.usage_report(db, "tenant", NOW - 20 * 86400, NOW + 1)
    # whole buckets live on in the rollup; only the range's partial edge bucket loses detail
    assert after.totals["requests"] >= before.totals["requests"] - 50


def test_the_writer_prunes_by_retention(tmp_path: Path) -> None:
    rng = random.Random(5)

    async def scenario() -> int:
        ledger = Ledger(tmp_path / "d.db", retention_days=1, clock=lambda: NOW)
        await ledger.open()
        futures = [ledger.add(record(NOW - age, n, rng))
                   for n, age in enumerate([10, 3600, 2 * 86400, 5 * 86400])]
        await asyncio.gather(*[f for f in futures if f is not None])
        left = await ledger.run(lambda db: db.execute("SELECT COUNT(*) FROM requests")
                                .fetchone()[0])
        await ledger.close()
        return int(left)

    # pruning runs with the batch; the batch itself holds the two old rows, which go at once
    assert asyncio.run(scenario()) == 2


def test_prices_follow_googles_billing_rules() -> None:
    pro = Price(1.25, 10.0, 0.125, input_long=2.50, output_long=15.0, cached_long=0.25)
    short = Tokens(prompt=100_000, candidates=1_000, thoughts=3_000, cached=40_000)
    assert cost_of(pro, short) == pytest.approx(
        (60_000 * 1.25 + 40_000 * 0.125 + 4_000 * 10.0) / 1e6)
    long = Tokens(prompt=300_000, candidates=1_000, cached=100_000)
    assert cost_of(pro, long) == pytest.approx(
        (200_000 * 2.50 + 100_000 * 0.25 + 1_000 * 15.0) / 1e6)
    flash = Price(0.30, 2.50, 0.03, audio_input=1.00)
    audio = Tokens(prompt=1_000, audio_prompt=600, candidates=10, tool_use=50)
    assert cost_of(flash, audio) == pytest.approx((450 * 0.30 + 600 * 1.00 + 10 * 2.5) / 1e6)
    book = PriceBook({"my-tuned-model": Price(1.0, 1.0)})
    assert book.price_of("gemini-2.5-flash-preview-09-2025") == book.price_of("gemini-2.5-flash")
    assert book.price_of("gemini-2.5-flash-lite-001") != book.price_of("gemini-2.5-flash")
    assert book.cost("my-tuned-model", Tokens(prompt=1_000_000)) == 1.0
    assert book.cost("unknown-model", Tokens(prompt=1_000)) == 0.0
    usage = {"promptTokenCount": 12, "candidatesTokenCount": 3, "thoughtsTokenCount": 5,
             "cachedContentTokenCount": 2, "totalTokenCount": 20,
             "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 4}]}
    assert Tokens.of(usage) == Tokens(12, 3, 5, 2, 0, 20, 4)


def test_price_overrides_from_configuration(sim: RunningSimulator) -> None:
    paid = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]
    with run_gateway(sim.url, paid,
                     prices={"gemini-2.5-flash-lite": {"input": 1000, "output": 0}}) as gw:
        answer = post(gw.url + "/v1beta/models/gemini-2.5-flash-lite:generateContent",
                      {"contents": [{"parts": [{"text": "price me"}]}]}, key=TOKEN)
        prompt = answer.json()["usageMetadata"]["promptTokenCount"]
        assert gw.ledger()[-1]["cost_usd"] == pytest.approx(prompt * 1000 / 1e6)


def test_usage_report_through_cli_and_admin_api(sim: RunningSimulator) -> None:
    with run_gateway(sim.url) as gw:
        secret, view = gw.new_key(name="reporter")
        for key in (TOKEN, TOKEN, secret):
            post(gw.url + "/v1beta/models/gemini-2.5-flash-lite:generateContent",
                 {"contents": [{"parts": [{"text": "count me"}]}]}, key=key)
        api = gw.admin("GET", "/admin/usage?by=tenant&since=1h").json()
        assert {r["tenant"]: r["requests"] for r in api["rows"]} == {"team": 2, "reporter": 1}
        by_key = gw.admin("GET", "/admin/usage?by=key&since=1h").json()["rows"]
        assert {r["name"] for r in by_key} == {"reporter", "(configured tokens)"}
        as_csv = gw.admin("GET", "/admin/usage?by=model&since=1h&format=csv").text
        assert list(csv.reader(io.StringIO(as_csv)))[1][:2] == ["gemini-2.5-flash-lite", "3"]

        def cli(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "gemgate", "usage", *args, "--db",
                                   gw.db_path], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout

        table = cli("--by", "tenant", "--since", "7d")
        assert "team" in table and "reporter" in table and "TOTAL" in table
        assert json.loads(cli("--by", "project", "--json"))["totals"]["requests"] == 3
        assert cli("--by", "day", "--csv").splitlines()[0].startswith("day,requests")
        assert json.loads(cli("--key", view["id"], "--json"))["totals"]["requests"] == 1
        bad = subprocess.run([sys.executable, "-m", "gemgate", "usage", "--since", "soon",
                              "--db", gw.db_path], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "cannot read 'soon'" in bad.stderr
