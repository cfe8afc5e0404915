"""Crash test: under steady load (plain and streamed), `kill -9` the gateway process. Every
request whose answer a client received in full has its ledger record — none lost, none
doubled — and the gateway starts again on the same file."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import yaml

from gemgate.simulator import run_simulator
from tests.conftest import TOKEN

PLAIN = "/v1beta/models/gemini-2.5-flash-lite:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash-lite:streamGenerateContent?alt=sse"


def start_gateway(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    sink = open(log, "wb")  # noqa: SIM115 - the process writes to it until it dies
    process = subprocess.Popen([sys.executable, "-m", "gemgate", "serve", "--port", "0",
                                "--config", str(config)], stdout=sink, stderr=subprocess.STDOUT,
                               env={**os.environ, "GEMINI_API_KEYS": ""}, cwd=config.parent)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+)", log.read_text())
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the gateway did not start:\n{log.read_text()}")


class Load:
    """Client threads that keep calling; each keeps the ids of answers it received whole."""

    def __init__(self, url: str, threads: int = 8) -> None:
        self.url = url
        self.complete: list[str] = []
        self.sent = 0
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, n: int) -> None:
        session = requests.Session()
        body = {"contents": [{"parts": [{"text": f"client {n}: write twenty words"}]}]}
        headers = {"x-goog-api-key": TOKEN}
        turn = 0
        while not self.stopped.is_set():
            turn += 1
            with self._lock:
                self.sent += 1
            try:
                if turn % 2:
                    answer = session.post(self.url + PLAIN, json=body, headers=headers,
                                          timeout=10)
                    whole = answer.status_code == 200 and "candidates" in answer.json()
                else:
                    answer = session.post(self.url + STREAM, json=body, headers=headers,
                                          timeout=10, stream=True)
                    text = b"".join(answer.iter_content(None)).decode()  # to the last byte
                    events = [json.loads(line[6:]) for line in text.splitlines()
                              if line.startswith("data: ")]
                    whole = answer.status_code == 200 and bool(events) and \
                        events[-1]["candidates"][0].get("finishReason") == "STOP"
            except (requests.RequestException, ValueError):
                continue  # cut off by the kill: not received in full
            if whole:
                with self._lock:
                    self.complete.append(answer.headers["x-gemgate-request-id"])

    def stop(self) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(15)


def test_kill_9_under_load_loses_no_completed_record(tmp_path: Path) -> None:
    with run_simulator(chunk_delay_ms=2) as sim:
        db = tmp_path / "gemgate.db"
        config = tmp_path / "gemgate.yaml"
        config.write_text(yaml.safe_dump({
            "upstream_url": sim.url, "log_level": "WARNING",
            "projects": [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"],
                          "limits": {"*": {"rpm": 10**6, "tpm": 10**9, "rpd": 10**9}}}],
            "tenants": [{"name": "load", "token": TOKEN}],
            "ledger": {"path": str(db)}}))
        log = tmp_path / "gateway.log"
        process, url = start_gateway(config, log)
        load = Load(url)
        load.start()
        time.sleep(2.0)
        assert len(load.complete) > 50, "steady load before the crash"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        load.stop()

        with sqlite3.connect(db) as connection:
            counts = dict(connection.execute(
                "SELECT request_id, COUNT(*) FROM requests GROUP BY request_id"))
        lost = [rid for rid in load.complete if rid not in counts]
        assert not lost, f"{len(lost)} of {len(load.complete)} completed requests lost"
        assert all(count == 1 for count in counts.values())
        assert len(counts) <= load.sent  # nothing recorded that was never asked

        # the rollup that reports and budgets read agrees with the rows that survived
        with sqlite3.connect(db) as connection:
            rows, cost = connection.execute(
                "SELECT COUNT(*), SUM(cost_usd) FROM requests").fetchone()
            rolled, rolled_cost = connection.execute(
                "SELECT SUM(requests), SUM(cost_usd) FROM usage_rollup").fetchone()
        assert rows == rolled and abs(cost - rolled_cost) < 1e-9

        process, url = start_gateway(config, tmp_path / "restart.log")  # the same database
        try:
            answer = requests.post(url + PLAIN, json={"contents": [{"parts": [{"text": "up"}]}]},
                                   headers={"x-goog-api-key": TOKEN}, timeout=10)
            assert answer.status_code == 200
            with sqlite3.connect(db) as connection:
                after = connection.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            assert after == rows + 1
        finally:
            process.terminate()
            process.wait(10)
