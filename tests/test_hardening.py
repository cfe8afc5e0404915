"""The adversarial pass: secrets never logged, model names and paths that are not what they
seem, the admin's auth scheme, the query forwarded byte for byte, and connections that are
opened and never used."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import time
from collections.abc import Iterator

import pytest
import requests
from aiohttp import web

from gemgate.config import Settings
from gemgate.logs import setup_logging
from gemgate.serve import banner
from gemgate.serving import BackgroundServer
from gemgate.simulator import RunningSimulator
from tests.conftest import ADMIN, TOKEN, RunningGateway, run_gateway


def _send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        try:
            return sock.recv(4096)
        except OSError:
            return b""


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    setup_logging("INFO", [], stream=stream)
    yield stream
    setup_logging("INFO", [])


def test_a_virtual_keys_secret_never_reaches_the_log(log_stream: io.StringIO,
                                                     sim: RunningSimulator) -> None:
    with run_gateway(sim.url) as gateway:
        secret, _ = gateway.new_key(name="leaky")
        port = int(gateway.url.rsplit(":", 1)[1])
        bad = [  # each is refused by aiohttp's own parser, which logs it
            b"GET /v1beta/models?key=" + secret.encode() + b"&x=" + b"a" * 9000
            + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1beta/\xff\xfe?key=" + secret.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1beta/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + secret.encode() + b"\x00x\r\n\r\n",
        ]
        for request in bad:
            assert _send_raw(port, request).startswith(b"HTTP/1.")
        requests.get(gateway.url + "/v1beta/models", params={"key": secret}, timeout=5)
        logging.getLogger("some.library").warning("failed with token %s", secret)
        time.sleep(0.2)
    logged = log_stream.getvalue()
    assert secret not in logged and secret[3:20] not in logged
    assert f"failed with token {secret[:4]}…{secret[-4:]}" in logged  # written, masked
    server_lines = [line for line in logged.splitlines() if '"aiohttp.server"' in line]
    assert len(server_lines) == len(bad)  # one line per refused request, no traceback
    assert "Traceback" not in logged


def test_the_banner_never_prints_a_configured_token() -> None:
    settings = Settings.model_validate({"tenants": [{"name": "t", "token": "sk-very-secret-1"}],
                                        "projects": [{"name": "p", "keys": ["k" * 20]}]})
    text = banner(settings, 8787, simulated=False)
    assert "sk-very-secret-1" not in text and "sk-v…et-1" in text


def test_the_admin_check_takes_only_the_bearer_scheme(gateway: RunningGateway) -> None:
    for header in (f"XBearer {ADMIN}", ADMIN, f"Basic {ADMIN}", f"Bearer{ADMIN}"):
        answer = requests.get(gateway.url + "/admin/pool", headers={"Authorization": header},
                              timeout=5)
        assert answer.status_code == 403, header
    for header in (f"Bearer {ADMIN}", f"bearer {ADMIN}"):
        assert requests.get(gateway.url + "/admin/pool", headers={"Authorization": header},
                            timeout=5).status_code == 200


@pytest.mark.parametrize("model", ["gemini-2.5-flash/../gemini-2.5-pro",
                                   "gemini-2.5-flash/x", "gemini\r\nX-Evil: 1", "gem\x00ini",
                                   "gemini 2.5", "../gemini-2.5-pro"])
def test_model_names_are_checked_before_rights(gateway: RunningGateway, model: str) -> None:
    secret, _ = gateway.new_key(name=f"flash-only-{abs(hash(model))}",
                                models=["gemini-2.5-flash*"])
    answer = requests.post(gateway.url + "/v1/chat/completions", timeout=10,
                           headers={"Authorization": f"Bearer {secret}"},
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "model_name_invalid"
    assert "x-gemgate-model" not in answer.headers


@pytest.mark.parametrize("path", ["models/gemini-2.5-flash%2F..%2Fgemini-2.5-pro:generateContent",
                                  "files/../models/gemini-2.5-pro:generateContent",
                                  "files/%2e%2e/models/gemini-2.5-pro:generateContent",
                                  "models/gemini%00:generateContent"])
def test_paths_that_change_once_normalised_are_refused(gateway: RunningGateway,
                                                       path: str) -> None:
    # http.client sends the path as written (requests would normalise the dot segments).
    connection = http.client.HTTPConnection(*gateway.url[7:].split(":"), timeout=10)
    connection.request("POST", f"/v1beta/{path}", body=b'{"contents": "hi"}',
                       headers={"x-goog-api-key": TOKEN, "Content-Type": "application/json"})
    answer = connection.getresponse()
    payload = json.loads(answer.read())
    connection.close()
    assert answer.status == 400, payload
    assert payload["error"]["status"] == "INVALID_ARGUMENT"


def test_the_query_reaches_upstream_byte_for_byte() -> None:
    seen: list[str] = []

    def echo() -> web.Application:
        async def models(request: web.Request) -> web.Response:
            seen.append(request.raw_path)
            return web.json_response({"models": []})

        app = web.Application()
        app.add_routes([web.get("/v1beta/models", models)])
        return app

    with BackgroundServer(echo) as google, run_gateway(
            google.url, [{"name": "p", "keys": ["upstream-key-0001"]}]) as gateway:
        query = "pageToken=ab%2Bcd%2F%3D%3D&q=%23frag&x=a+b%20c&key=" + TOKEN + "&alt=json"
        answer = requests.get(f"{gateway.url}/v1beta/models?{query}", timeout=10)
        assert answer.status_code == 200, answer.text
    assert seen == ["/v1beta/models?pageToken=ab%2Bcd%2F%3D%3D&q=%23frag&x=a+b%20c&alt=json"]


def test_connections_that_never_finish_a_request_are_closed(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, server={"idle_timeout_s": 0.5,
                                      "body_idle_timeout_s": 0.5}) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        opened = time.monotonic()
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHo")
        no_body = socket.create_connection(("127.0.0.1", port), timeout=5)
        no_body.sendall(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\n"
                        b"Host: x\r\nx-goog-api-key: " + TOKEN.encode()
                        + b"\r\nContent-Length: 100\r\n\r\n{\"contents\"")
        assert silent.recv(100) == b""  # closed by the server
        assert half.recv(100) == b""
        answer = no_body.recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0], answer[:200]
        assert time.monotonic() - opened < 4
        for sock in (silent, half, no_body):
            sock.close()
        # A slow but steady body is not cut: every pause is shorter than the idle timeout.
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = b'{"contents": [{"parts": [{"text": "hello there"}]}]}'
        slow.sendall(b"POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\n"
                     b"Host: x\r\nx-goog-api-key: " + TOKEN.encode()
                     + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for n in range(0, len(body), 10):
            slow.sendall(body[n:n + 10])
            time.sleep(0.15)
        assert b" 200 " in slow.recv(4096).split(b"\r\n")[0]
        slow.close()


def _upload_chunk_head(gateway: RunningGateway, port: int) -> bytes:
    """A started upload's finalising chunk request, headers only (40 bytes promised)."""
    start = requests.post(gateway.url + "/upload/v1beta/files", timeout=5,
                          json={"file": {"displayName": "x"}}, headers={
                              "x-goog-api-key": TOKEN, "X-Goog-Upload-Protocol": "resumable",
                              "X-Goog-Upload-Command": "start",
                              "X-Goog-Upload-Header-Content-Length": "40",
                              "X-Goog-Upload-Header-Content-Type": "text/plain"})
    path = start.headers["x-goog-upload-url"].split(str(port), 1)[1]
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
            "X-Goog-Upload-Command: upload, finalize\r\nX-Goog-Upload-Offset: 0\r\n\r\n"
            ).encode()


def test_an_upload_chunk_that_stalls_is_cut_and_a_slow_one_is_not(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, server={"body_idle_timeout_s": 0.5}) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
        stalled.sendall(_upload_chunk_head(gateway, port) + b"only ten b")
        started = time.monotonic()
        answer = stalled.recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0], answer[:200]
        assert time.monotonic() - started < 3
        stalled.close()
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.sendall(_upload_chunk_head(gateway, port))
        for _ in range(4):
            slow.sendall(b"0123456789")
            time.sleep(0.2)
        reply = slow.recv(4096)
        assert b" 200 " in reply.split(b"\r\n")[0], reply[:300]
        slow.close()
