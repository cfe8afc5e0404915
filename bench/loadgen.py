"""Load generation with wrk (Debian package `wrk`), and the processes under test.

Every figure is measured in one run next to its baseline, so ratios hold across machines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

SMALL_GENERATE = '{"contents":[{"role":"user","parts":[{"text":"Hello, how are you?"}]}]}'
SMALL_CHAT = ('{"model":"gemini-2.5-flash","messages":[{"role":"user",'
              '"content":"Hello, how are you?"}]}')


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int

    def line(self, label: str) -> str:
        return (f"{label:<28} {self.requests_per_second:>10,.0f} req/s   p50 {self.p50_ms:6.2f} ms"
                f"   p90 {self.p90_ms:6.2f} ms   p99 {self.p99_ms:6.2f} ms   errors {self.errors}")


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is needed for benchmarks: apt-get install -y wrk")
    return path


_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["%s"] = "%s"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%f %%f %%f %%f %%d\\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(url: str, key: str, *, seconds: float, connections: int = 16,
            body: str = SMALL_GENERATE, rate: int | None = None, core: int | None = None,
            bearer: bool = False) -> Result:
    """Drives `url` with POSTs of `body`; `rate` needs wrk2 and is ignored by plain wrk. The key
    goes as x-goog-api-key (Gemini's SDKs), or as `Authorization: Bearer` (OpenAI's)."""
    header, value = ("Authorization", f"Bearer {key}") if bearer else ("x-goog-api-key", key)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_SCRIPT % (body, header, value))
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = [require_wrk(), "-t1", f"-c{connections}", duration, "-s", script.name, url]
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    found = re.search(r"RESULT (\S+) (\S+) (\S+) (\S+) (\d+)", output)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    rps, p50, p90, p99, errors = found.groups()
    return Result(float(rps), float(p50), float(p90), float(p99), int(errors))


def wait_ready(url: str, timeout: float = 20.0) -> float:
    """Seconds until `url` answers 200, counted from the call (made right after launch)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(args: list[str], *, core: int | None = None, env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "gemgate", *args]
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    sink = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        if log:
            sink.close()  # type: ignore[union-attr]
