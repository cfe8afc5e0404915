"""Before/after on the hot path, in one run: this tree's gateway against an earlier commit's.

    python -m bench.compare --against 3a7f36c          # native and OpenAI, 5 rounds of 5 s
    python -m bench.compare --against HEAD~1 --rounds 3 --seconds 3

Both gateways run side by side in front of one simulator, with the same configuration, and
wrk drives them in turns (A B A B …), so the machine's drift between runs (several per cent on
this 2-core box, as large as the changes we want to see) falls on both alike. The report is
each side's median over the rounds and the change.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import yaml

from bench.gateway import PROJECTS, TOKEN
from bench.loadgen import SMALL_CHAT, free_port, process, run_wrk, wait_ready

ROOT = Path(__file__).resolve().parent.parent
SURFACES = {"native": ("/v1beta/models/gemini-2.5-flash:generateContent", None),
            "openai": ("/v1/chat/completions", SMALL_CHAT)}


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The source tree of `revision`, exported to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="gemgate-before-") as folder:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder) / "src"


def gateway(stack: ExitStack, upstream: str, source: Path | None,
            extra: dict[str, object] | None = None) -> str:
    """A gateway process (this tree's, or `source`'s) in front of `upstream`; its URL."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="gemgate-compare-"))
    config = folder / "gemgate.yaml"
    config.write_text(yaml.safe_dump({"projects": PROJECTS,
                                      "ledger": {"path": str(folder / "gemgate.db")},
                                      **(extra or {})}))
    env = {"GEMINI_API_KEYS": "", "GEMGATE_UPSTREAM_URL": upstream,
           "GEMGATE_CLIENT_KEYS": TOKEN, "GEMGATE_LOG_LEVEL": "WARNING"}
    if source is not None:
        env["PYTHONPATH"] = str(source)  # ahead of the installed (this tree's) package
    stack.enter_context(process(["serve", "--port", str(port), "--config", str(config)],
                                env=env))
    wait_ready(f"http://127.0.0.1:{port}/healthz")
    return f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with ExitStack() as stack:
        before_source = stack.enter_context(checkout(args.against))
        sim_port = free_port()
        stack.enter_context(process(["simulate", "--port", str(sim_port)]))
        upstream = f"http://127.0.0.1:{sim_port}"
        wait_ready(f"{upstream}/_sim/stats")
        sides = {"before": gateway(stack, upstream, before_source),
                 "after": gateway(stack, upstream, None)}
        print(f"before = {args.against}, after = this tree; {args.rounds} rounds of "
              f"{args.seconds:g} s each, in turns")
        in_turns(sides, args.rounds, args.seconds)


def in_turns(sides: dict[str, str], rounds: int, seconds: float) -> None:
    """wrk on each side in turns, `rounds` times, per surface; medians and the change."""
    first, second = sides
    for surface, (path, body) in SURFACES.items():
        kind = {} if body is None else {"body": body, "bearer": True}
        rates: dict[str, list[float]] = {side: [] for side in sides}
        for url in sides.values():  # warm both up
            run_wrk(url + path, TOKEN, seconds=1, **kind)  # type: ignore[arg-type]
        for _ in range(rounds):
            for side, url in sides.items():
                result = run_wrk(url + path, TOKEN, seconds=seconds,
                                 **kind)  # type: ignore[arg-type]
                rates[side].append(result.requests_per_second)
        a, b = (statistics.median(rates[s]) for s in (first, second))
        print(f"{surface:<7} {first} {a:8,.0f} req/s   {second} {b:8,.0f} req/s   "
              f"change {100 * (b / a - 1):+5.1f}%   "
              f"(rounds: {', '.join(f'{r:,.0f}' for r in rates[first])} | "
              f"{', '.join(f'{r:,.0f}' for r in rates[second])})")


if __name__ == "__main__":
    main()
