"""`gemgate batch run` against an unlimited simulator, through a gateway process: lines per
second, and the runner's memory over 10,000 and 100,000 lines (it should stay flat: lines are
read lazily, a bounded queue feeds the workers, answers go straight to the journal).

    python -m bench.batch                 # 10,000 and 100,000 lines
    python -m bench.batch --smoke         # 1,000 and 3,000, for CI
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import orjson

from bench.compare import gateway
from bench.gateway import TOKEN
from bench.loadgen import free_port, process, wait_ready


def _input(path: Path, lines: int) -> None:
    with path.open("wb") as target:
        for n in range(lines):
            target.write(orjson.dumps({"id": f"q{n}", "contents": [
                {"role": "user", "parts": [{"text": f"question number {n}"}]}]}) + b"\n")


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _run(url: str, lines: int, concurrency: int) -> tuple[float, float]:
    """(lines per second, peak RSS in MB of the batch process)."""
    folder = Path(tempfile.mkdtemp(prefix="gemgate-bench-batch-"))
    _input(folder / "in.jsonl", lines)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "gemgate", "batch", "run",
                              str(folder / "in.jsonl"), "-o", str(folder / "out.jsonl"),
                              "--model", "gemini-2.5-flash", "--concurrency", str(concurrency),
                              "--gateway", url, "--token", TOKEN],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0.0]

    def watch() -> None:
        while child.poll() is None:
            peak[0] = max(peak[0], _rss_mb(child.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    output, _ = child.communicate()
    took = time.perf_counter() - started
    watcher.join()
    if child.returncode != 0:
        raise RuntimeError(output.decode())
    return lines / took, peak[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    sizes = (1_000, 3_000) if args.smoke else (10_000, 100_000)
    with ExitStack() as stack:
        sim_port = free_port()
        stack.enter_context(process(["simulate", "--port", str(sim_port)]))
        upstream = f"http://127.0.0.1:{sim_port}"
        wait_ready(f"{upstream}/_sim/stats")
        url = gateway(stack, upstream, None)
        print(f"gemgate batch run, --concurrency {args.concurrency}, through a gateway process "
              "in front of an unlimited simulator (whole run, process start included):")
        for lines in sizes:
            rate, peak = _run(url, lines, args.concurrency)
            print(f"  {lines:>8,} lines: {rate:7,.0f} lines/s, batch process peak RSS "
                  f"{peak:6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
