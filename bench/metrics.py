"""What the Prometheus metrics cost a request: the same tree with metrics on and off, side by
side in front of one simulator, driven in turns (bench/compare.py's method).

    python -m bench.metrics                      # 5 rounds of 5 s per surface
    python -m bench.metrics --rounds 1 --seconds 1   # for CI
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from bench.compare import gateway, in_turns
from bench.loadgen import free_port, process, wait_ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with ExitStack() as stack:
        sim_port = free_port()
        stack.enter_context(process(["simulate", "--port", str(sim_port)]))
        upstream = f"http://127.0.0.1:{sim_port}"
        wait_ready(f"{upstream}/_sim/stats")
        sides = {"off": gateway(stack, upstream, None, {"metrics": {"enabled": False}}),
                 "on": gateway(stack, upstream, None)}
        print(f"metrics off, then on; {args.rounds} rounds of {args.seconds:g} s, in turns")
        in_turns(sides, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
