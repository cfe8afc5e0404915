"""`gemgate batch run|estimate` as a user runs them (a subprocess), through a gateway in front
of the simulator: paced by quota without a 429, complete and in order, resumable after
`kill -9` without calling any id twice; and idempotent requests at the gateway."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from gemgate.simulator import run_simulator
from gemgate.simulator.config import QuotaLimits, SimConfig, SimProject
from tests.conftest import TOKEN, eventually, run_gateway

FLASH = "gemini-2.5-flash"
PAID = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]}]


def _input(path: Path, lines: int) -> Path:
    with path.open("wb") as target:
        for n in range(lines):
            if n % 10 == 3:  # some lines in OpenAI's shape
                line = {"id": f"q{n}", "model": FLASH,
                        "messages": [{"role": "user", "content": f"question {n}"}]}
            else:
                line = {"id": f"q{n}", "contents": [{"role": "user",
                                                     "parts": [{"text": f"question {n}"}]}]}
            target.write(orjson.dumps(line) + b"\n")
    return path


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    """A failing test must not leave a batch run calling a gateway that is gone."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def _batch(*args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "gemgate", "batch", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _STARTED.append(process)
    return process


def _run_args(source: Path, out: Path, url: str, concurrency: str) -> tuple[str, ...]:
    """`gemgate batch run` through the gateway at `url` (the same command re-runs it)."""
    return ("run", str(source), "-o", str(out), "--model", FLASH, "--concurrency", concurrency,
            "--gateway", url, "--token", TOKEN)


def _finished(process: subprocess.Popen[bytes], timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output.decode()
    return output.decode()


def _journaled(journal: Path) -> int:
    """Lines a run has committed (0 before its journal has its table: the run just started)."""
    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(journal) as db:
            return int(db.execute("SELECT count(*) FROM done").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _answers(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _generate_calls(sim: Any) -> int:
    return sum(row["methods"].get("generateContent", 0)
               for row in sim.stats()["by_key"].values())


def _upstream_429s(sim: Any) -> int:
    return sum(int(row["statuses"].get("429", 0)) for row in sim.stats()["by_key"].values())


def test_a_run_paced_by_rpm_is_complete_in_order_and_never_429s(tmp_path: Path) -> None:
    config = SimConfig(minute_seconds=1.0, projects=[SimProject(
        name="sim-paid", keys=["sim-paid-key-1"], tier="tier1",
        quotas={FLASH: QuotaLimits(rpm=900)})])
    projects = [{**PAID[0], "limits": {FLASH: {"rpm": 900}}}]
    source = _input(tmp_path / "in.jsonl", 2000)
    with run_simulator(config) as sim, run_gateway(
            sim.url, projects, scheduling={"minute_s": 1.0, "margin_s": 0.1}) as gateway:
        out = tmp_path / "out.jsonl"
        said = _finished(_batch("run", str(source), "-o", str(out), "--model", FLASH,
                                "--concurrency", "32", "--gateway", gateway.url,
                                "--token", TOKEN))
        assert "2,000 of 2,000 lines done, 0 failed" in said
        answers = _answers(out)
        assert [a["id"] for a in answers] == [f"q{n}" for n in range(2000)]
        assert all("response" in a for a in answers)
        assert _upstream_429s(sim) == 0 and _generate_calls(sim) == 2000
        # Run again: nothing to do, nothing called.
        _finished(_batch("run", str(source), "-o", str(out), "--model", FLASH,
                         "--gateway", gateway.url, "--token", TOKEN))
        assert _generate_calls(sim) == 2000


def test_killed_half_way_and_run_again_no_id_is_called_twice(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl", 2000)
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    with run_simulator(latency_ms=30) as sim, run_gateway(sim.url, PAID) as gateway:
        args = _run_args(source, out, gateway.url, "16")
        first = _batch(*args)
        eventually(lambda: _journaled(journal) >= 600, 60, "the run never got half-way")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert not out.exists()  # no half-written output
        kept = _journaled(journal)
        assert 600 <= kept < 2000
        said = _finished(_batch(*args))
        assert "2,000 of 2,000 lines done, 0 failed" in said
        # Each id reached Google once: the lines in flight at the kill were sent again with
        # the same Idempotency-Key, and the gateway replayed their answers.
        assert _generate_calls(sim) == 2000
        replays = gateway.ledger("cache = 'REPLAY'")
        assert len(replays) <= 16 and all(r["cost_usd"] == 0 for r in replays)
        # The same output as a run never interrupted (answers are deterministic; Google's
        # response ids are not).
        again = tmp_path / "again.jsonl"
        _finished(_batch("run", str(source), "-o", str(again), "--model", FLASH,
                         "--concurrency", "16", "--gateway", gateway.url, "--token", TOKEN))
    assert _without_ids(_answers(out)) == _without_ids(_answers(again))


def _without_ids(answers: list[dict[str, Any]]) -> list[Any]:
    for answer in answers:
        answer["response"].pop("responseId", None)
        answer["response"].pop("id", None)  # OpenAI's
        answer["response"].pop("created", None)
    return answers


def test_an_in_process_run_and_the_estimate(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a", "contents": [{"parts": [{"text": "hello"}]}]}\n'
                       b'not json\n'
                       b'{"id": "a", "contents": [{"parts": [{"text": "again"}]}]}\n'
                       b'{"id": "c", "contents": [{"parts": [{"text": "x"}]}], '
                       b'"generationConfig": {"maxOutputTokens": 100}}\n')
    with run_simulator() as sim:
        config = tmp_path / "gemgate.yaml"
        config.write_text(yaml.safe_dump({
            "upstream_url": sim.url, "projects": PAID,
            "tenants": [{"name": "batcher", "token": TOKEN}],
            "ledger": {"path": str(tmp_path / "gemgate.db")}}))
        out = tmp_path / "out.jsonl"
        said = _finished(_batch("run", str(source), "-o", str(out), "--model", FLASH,
                                "--config", str(config)))
        assert "4 of 4 lines done, 2 failed" in said
        answers = _answers(out)
        assert [a["id"] for a in answers] == ["a", "line-2", "a", "c"]
        assert "response" in answers[0] and "not JSON" in answers[1]["error"]["message"]
        assert "used by an earlier line" in answers[2]["error"]["message"]
        with sqlite3.connect(tmp_path / "gemgate.db") as db:  # metered by the gateway
            assert db.execute("SELECT count(*) FROM requests WHERE tenant = 'batcher' "
                              "AND status = 200").fetchone()[0] == 2
        estimate = _finished(_batch("estimate", str(source), "--model", FLASH, "--config",
                                    str(config)))
        assert "counted by countTokens" in estimate and "Batch API $" in estimate
        row = next(x for x in estimate.splitlines() if x.startswith(FLASH))
        assert row.split()[1:4] == ["2", row.split()[2], "600"]  # 500 (default) + 100 output
        assert int(row.split()[2]) > 0 and "2 lines not counted" in estimate


def test_an_idempotent_request_is_answered_once(sim: Any) -> None:
    other = "gg-other-tenant-0001"
    tenants = [{"name": "team", "token": TOKEN}, {"name": "other", "token": other}]
    with run_gateway(sim.url, PAID, tenants=tenants) as gateway:
        before = _generate_calls(sim)
        url = gateway.url + f"/v1beta/models/{FLASH}:generateContent"
        body = {"contents": [{"parts": [{"text": "once only"}]}]}
        headers = {"x-goog-api-key": TOKEN, "Idempotency-Key": "order-42"}
        answers: list[requests.Response] = []
        callers = [threading.Thread(target=lambda: answers.append(
            requests.post(url, json=body, headers=headers, timeout=30))) for _ in range(4)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert [a.status_code for a in answers] == [200] * 4
        assert len({a.json()["responseId"] for a in answers}) == 1  # one answer, four times
        assert sum(a.headers.get("x-gemgate-idempotent-replay") == "true" for a in answers) == 3
        assert _generate_calls(sim) == before + 1
        reused = requests.post(url, json={"contents": [{"parts": [{"text": "other"}]}]},
                               headers=headers, timeout=30)
        assert reused.status_code == 400
        assert reused.json()["error"]["hint"].startswith("This Idempotency-Key was already")
        empty_key = requests.post(url, json=body, headers={
            "x-goog-api-key": TOKEN, "Idempotency-Key": ""}, timeout=30)
        assert empty_key.status_code == 400
        # Keys are per tenant: another tenant's same key is its own request, never a replay.
        theirs = requests.post(url, json=body, timeout=30,
                               headers={"x-goog-api-key": other, "Idempotency-Key": "order-42"})
        assert theirs.status_code == 200 and "x-gemgate-idempotent-replay" not in theirs.headers
        assert theirs.json()["responseId"] != answers[0].json()["responseId"]
        assert _generate_calls(sim) == before + 2


def test_google_mode_runs_the_same_input_through_the_batch_api(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl", 30)
    other = "gg-other-tenant-0001"
    tenants = [{"name": "team", "token": TOKEN}, {"name": "other", "token": other}]
    with run_simulator(batch_seconds=0.4) as sim, \
            run_gateway(sim.url, PAID, tenants=tenants) as gateway:
        out = tmp_path / "out.jsonl"
        said = _finished(_batch("run", str(source), "-o", str(out), "--model", FLASH,
                                "--mode", "google", "--poll-s", "0.1",
                                "--gateway", gateway.url, "--token", TOKEN))
        assert "30 of 30 lines done, 0 failed" in said
        answers = _answers(out)
        assert [a["id"] for a in answers] == [f"q{n}" for n in range(30)]
        assert all(a["response"]["candidates"] for a in answers)
        assert _generate_calls(sim) == 0  # all through the Batch API, none interactive
        metered = gateway.ledger("action = 'batchResults'")
        assert len(metered) == 1 and metered[0]["tenant"] == "team"
        assert metered[0]["total_tokens"] == sum(
            a["response"]["usageMetadata"]["totalTokenCount"] for a in answers)
        status = _finished(_batch("status", str(out)))
        assert "BATCH_STATE_SUCCEEDED" in status and "30 lines" in status
        listed = _finished(_batch("list", "--gateway", gateway.url, "--token", TOKEN))
        assert status.split()[-5] in listed  # the job's name
        assert _finished(_batch("list", "--gateway", gateway.url, "--token", other)) == ""
        # A large input is cut into several jobs (here: at 1,024 bytes each).
        split = tmp_path / "split.jsonl"
        said = _finished(_batch("run", str(source), "-o", str(split), "--model", FLASH,
                                "--mode", "google", "--poll-s", "0.1", "--max-job-bytes",
                                "1024", "--gateway", gateway.url, "--token", TOKEN))
        assert "30 of 30 lines done, 0 failed" in said
        jobs = [x for x in _status(split).splitlines() if x.startswith("batches/")]
        assert len(jobs) >= 3 and all("SUCCEEDED" in x for x in jobs)
        assert _without_ids(_answers(split)) == _without_ids(_answers(out))
        # A run whose job is cancelled ends with each line saying so.
        requests.patch(sim.url + "/_sim/config", json={"batch_seconds": 3600},
                       timeout=5).raise_for_status()
        slow = tmp_path / "slow.jsonl"
        running = _batch("run", str(source), "-o", str(slow), "--model", FLASH, "--mode",
                         "google", "--poll-s", "0.1", "--gateway", gateway.url, "--token", TOKEN)
        eventually(lambda: "BATCH_STATE_PENDING" in _status(slow), 30, "no job was made")
        assert "cancelled" in _finished(_batch("cancel", str(slow), "--gateway", gateway.url,
                                               "--token", TOKEN))
        said = _finished(running)
        assert "30 of 30 lines done, 30 failed" in said
        assert all("CANCELLED" in a["error"]["status"] for a in _answers(slow))


def test_ctrl_c_stops_cleanly_and_a_rerun_goes_on(tmp_path: Path) -> None:
    source = _input(tmp_path / "in.jsonl", 600)
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    with run_simulator(latency_ms=30) as sim, run_gateway(sim.url, PAID) as gateway:
        args = _run_args(source, out, gateway.url, "8")
        first = _batch(*args)
        eventually(lambda: _journaled(journal) >= 100, 60, "the run never started")
        first.send_signal(signal.SIGINT)
        said, _ = first.communicate(timeout=60)
        assert first.returncode == 130, said
        assert b"stopped" in said and not out.exists()
        # What was in flight finished and is kept: nothing called that is not in the journal.
        assert _generate_calls(sim) == _journaled(journal) < 600
        assert "600 of 600 lines done" in _finished(_batch(*args))
        assert _generate_calls(sim) == 600


def _status(output: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "gemgate", "batch", "status", str(output)],
                          capture_output=True, text=True)
    return done.stdout
