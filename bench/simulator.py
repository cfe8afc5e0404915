"""How fast the simulator answers small generateContent requests on one core.

    python -m bench.simulator [--seconds 5]

Target (issue 2): at least 10,000 requests per second on one core, so the simulator is never the
bottleneck of a gateway benchmark. The simulator is pinned to core 0 and wrk to core 1.
"""

from __future__ import annotations

import argparse
import sys

from bench.loadgen import free_port, process, run_wrk, wait_ready

TARGET = 10_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    with process(["simulate", "--port", str(port)], core=0):
        wait_ready(f"http://127.0.0.1:{port}/_sim/stats")
        url = f"http://127.0.0.1:{port}/v1beta/models/gemini-2.5-flash:generateContent"
        run_wrk(url, "sim-free-key-1", seconds=1, connections=args.connections, core=1)  # warm
        result = run_wrk(url, "sim-free-key-1", seconds=args.seconds,
                         connections=args.connections, core=1)
    print(result.line("simulator (1 core)"))
    verdict = "meets" if result.requests_per_second >= TARGET else "MISSES"
    print(f"target ≥ {TARGET:,} req/s on one core: {verdict}")
    return 0 if result.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
