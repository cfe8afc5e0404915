"""Per-project outbound proxies (how users in China reach Google): SOCKS5 and HTTP, through a
real proxy server (pproxy); a dead proxy fails its project over to the others."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from bench.loadgen import free_port
from gemgate.simulator import run_simulator
from tests.conftest import TOKEN, gateway_settings, run_gateway, sdk

# pproxy picks uvloop up when installed and then fails to find an event loop; run it on the
# standard loop.
_PPROXY = ("import sys, asyncio; sys.modules['uvloop'] = None; "
           "asyncio.set_event_loop(asyncio.new_event_loop()); "
           "from pproxy.server import main; main()")


@contextmanager
def proxy_server(scheme: str, log: Path) -> Iterator[str]:
    port = free_port()
    with open(log, "w") as sink:
        process = subprocess.Popen([sys.executable, "-c", _PPROXY, "-l",
                                    f"{scheme}://127.0.0.1:{port}", "-v"], stdout=sink,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    requests.get(f"http://127.0.0.1:{port}", timeout=0.5)
                    break
                except requests.RequestException as exc:
                    if "Connection refused" not in str(exc):
                        break
                    time.sleep(0.05)
            yield f"{scheme}://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def test_socks5_and_http_proxies_per_project(tmp_path: Path) -> None:
    socks_log, http_log = tmp_path / "socks.log", tmp_path / "http.log"
    with run_simulator() as sim, proxy_server("socks5", socks_log) as socks, \
            proxy_server("http", http_log) as http:
        projects = [{"name": "sim-free", "keys": ["sim-free-key-1"], "proxy": socks},
                    {"name": "sim-paid", "keys": ["sim-paid-key-1"], "proxy": http}]
        with run_gateway(sim.url, projects=projects) as gateway:
            client = sdk(gateway.url, TOKEN)
            for _ in range(4):
                assert client.models.generate_content(model="gemini-2.5-flash",
                                                      contents="hi").text
            streamed = "".join(c.text for c in client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="Write 20 words"))
            assert len(streamed.split()) == 20
        assert sim.stats()["by_project"] == {"sim-free": 3, "sim-paid": 2}
        upstream = f"127.0.0.1:{sim.port}"
        assert upstream in socks_log.read_text() and upstream in http_log.read_text()


def test_a_dead_proxy_fails_over_to_another_project() -> None:
    with run_simulator() as sim:
        projects = [{"name": "sim-free", "keys": ["sim-free-key-1"],
                     "proxy": f"socks5://127.0.0.1:{free_port()}"},
                    {"name": "sim-paid", "keys": ["sim-paid-key-1"]}]
        with run_gateway(sim.url, projects=projects) as gateway:
            client = sdk(gateway.url, TOKEN)
            for _ in range(4):
                assert client.models.generate_content(model="gemini-2.5-flash",
                                                      contents="hi").text
            # A network failure says nothing about the key: it stays in service.
            assert gateway.project_view("sim-free")["keys"][0]["state"] == "active"
        assert sim.stats()["by_project"] == {"sim-paid": 4}


def test_socks5h_resolves_names_at_the_proxy(tmp_path: Path) -> None:
    """socks5h:// (names resolved by the proxy, the usual setting where DNS is poisoned) works;
    an https:// proxy is refused by the configuration with a clear reason."""
    with run_simulator() as sim, proxy_server("socks5", tmp_path / "socks.log") as socks:
        proxy = socks.replace("socks5://", "socks5h://")
        projects = [{"name": "sim-free", "keys": ["sim-free-key-1"], "proxy": proxy}]
        with run_gateway(sim.url.replace("127.0.0.1", "localhost"),
                         projects=projects) as gateway:
            client = sdk(gateway.url, TOKEN)
            assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
        assert f"localhost:{sim.port}" in (tmp_path / "socks.log").read_text()
    with pytest.raises(ValidationError, match="use http:// for an HTTP proxy"):
        gateway_settings(sim.url, [{"name": "p", "keys": ["k-0000000001"],
                                    "proxy": "https://127.0.0.1:8080"}])
