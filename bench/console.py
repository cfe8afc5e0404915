"""What the console costs the gateway, and how fast its pages are over a large ledger.

    python -m bench.console                         # 10 rounds of 5 s each way, 5 consoles
    python -m bench.console --rounds 60 --seconds 5 # ten minutes of polling, in turns
    python -m bench.console --smoke                 # for CI

1. Polling: one gateway in front of the simulator, wrk driving it; in turns, alone and while
   `--consoles` signed-in consoles each load *every* page with its stylesheet and script and
   the live figures every 5 s (a real browser caches the assets and only the Overview polls:
   this is the worst case). The report is each way's median throughput and the change.
2. Pages over a large ledger: `--rows` records over 30 days (bench/ledger.py's fill), then the
   time of the Usage page (30 days by tenant, by day) and the Requests page (a tenant's, a
   status class's, one id) on a gateway reading that file.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.compare import gateway
from bench.gateway import TOKEN
from bench.ledger import fill
from bench.loadgen import free_port, process, run_wrk, wait_ready

ADMIN = "gg-bench-admin-key-0001"
PAGES = ("overview", "upstream", "keys", "usage", "requests", "settings")
PATH = "/v1beta/models/gemini-2.5-flash:generateContent"


class Console(threading.Thread):
    """One signed-in console loading every page every `every` seconds until stopped."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.loads = 0
        self.polling = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(requests.RequestException):  # the gateway stopped at the end
            self._load_pages()

    def _load_pages(self) -> None:
        session = requests.Session()
        session.post(self.url + "/console/login", data={"key": ADMIN}, timeout=10)
        while not self.stopped.is_set():
            if not self.polling.wait(0.1):
                continue
            started = time.monotonic()
            for page in PAGES:
                session.get(f"{self.url}/console/{page}", timeout=10)
            for asset in ("console.css", "console.js"):
                session.get(f"{self.url}/console/static/{asset}", timeout=10)
            session.get(self.url + "/admin/live", timeout=10)
            self.loads += 1
            self.stopped.wait(max(0.0, self.every - (time.monotonic() - started)))


def polling(upstream: str, rounds: int, seconds: float, consoles: int) -> None:
    with ExitStack() as stack:
        url = gateway(stack, upstream, None, {"admin_key": ADMIN})
        watchers = [Console(url, 5.0) for _ in range(consoles)]
        for watcher in watchers:
            watcher.start()
        run_wrk(url + PATH, TOKEN, seconds=1)  # warm up
        rates: dict[str, list[float]] = {"alone": [], "polled": []}
        for _ in range(rounds):
            for way in rates:
                for watcher in watchers:
                    (watcher.polling.set if way == "polled" else watcher.polling.clear)()
                rates[way].append(run_wrk(url + PATH, TOKEN, seconds=seconds)
                                  .requests_per_second)
        for watcher in watchers:
            watcher.stopped.set()
        alone, polled = (statistics.median(rates[w]) for w in ("alone", "polled"))
        loads = sum(w.loads for w in watchers)
        print(f"{consoles} consoles loading all {len(PAGES)} pages every 5 s "
              f"({loads} rounds of page loads in {rounds * seconds:g} s polled):")
        print(f"  alone {alone:8,.0f} req/s   polled {polled:8,.0f} req/s   "
              f"change {100 * (polled / alone - 1):+5.1f}%")


def pages(upstream: str, rows: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-console-"))
    took = fill(folder / "ledger.db", rows, 30)
    with sqlite3.connect(folder / "ledger.db") as db:  # a database at rest, not mid-bulk-load
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"filled {rows:,} ledger records over 30 days in {took:.0f} s")
    with ExitStack() as stack:
        url = gateway(stack, upstream, None, {"admin_key": ADMIN,
                                              "ledger": {"path": str(folder / "ledger.db")}})
        session = requests.Session()
        session.post(url + "/console/login", data={"key": ADMIN}, timeout=10)
        some_id = re.search(r'class="request-id">([^<]+)<',
                            session.get(url + "/console/requests", timeout=60).text)
        for name, path in (
                ("Usage, 30 days by tenant", "/console/usage?by=tenant&since=30d"),
                ("Usage, 30 days by day", "/console/usage?by=day&since=30d"),
                ("Requests, last day", "/console/requests"),
                ("Requests, one tenant, 7 days", "/console/requests?tenant=member-3&since=7d"),
                ("Requests, 5xx, 30 days", "/console/requests?status=5xx&since=30d"),
                ("Requests, one id", "/console/requests?id="
                 + (some_id.group(1) if some_id else "x"))):
            times = []
            for _ in range(3):
                started = time.perf_counter()
                answer = session.get(url + path, timeout=60)
                times.append(time.perf_counter() - started)
                answer.raise_for_status()
            print(f"  {name:<32} {1000 * min(times):7.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--consoles", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s, 20,000 rows")
    parser.add_argument("--pages-only", action="store_true", help="skip the polling part")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.rows = 1, 1.0, 20_000
    with ExitStack() as stack:
        sim_port = free_port()
        stack.enter_context(process(["simulate", "--port", str(sim_port)]))
        upstream = f"http://127.0.0.1:{sim_port}"
        wait_ready(f"{upstream}/_sim/stats")
        if not args.pages_only:
            polling(upstream, args.rounds, args.seconds, args.consoles)
        pages(upstream, args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
