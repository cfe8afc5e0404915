"""What real clients met beyond our own tests: Google's documented curl upload, a reverse proxy
that terminates TLS, browser apps (CORS), clients that append /models/… to their base URL, and
requests that used to leave no access-log line."""

from __future__ import annotations

import io
import json
import time

import requests

from gemgate.logs import setup_logging
from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, RunningGateway, run_gateway

_START = {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
          "X-Goog-Upload-Header-Content-Length": "5",
          "X-Goog-Upload-Header-Content-Type": "text/plain", "Content-Type": "application/json"}


def test_googles_documented_single_quoted_upload_start_works(
        sim: RunningSimulator, gateway: RunningGateway) -> None:
    # As in Google's REST docs: curl -d "{'file': {'display_name': 'TEXT'}}"
    body = b"{'file': {'display_name': 'TEXT'}}"
    direct = requests.post(sim.url + "/upload/v1beta/files", data=body, timeout=5,
                           headers={**_START, "x-goog-api-key": "sim-free-key-1"})
    assert direct.status_code == 200 and direct.headers["x-goog-upload-url"]
    through = requests.post(gateway.url + "/upload/v1beta/files", data=body, timeout=5,
                            headers={**_START, "x-goog-api-key": TOKEN})
    assert through.status_code == 200
    url = through.headers["x-goog-upload-url"]
    done = requests.post(url, data=b"hello", timeout=5, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert done.json()["file"]["displayName"] == "TEXT"
    not_json = requests.post(sim.url + "/upload/v1beta/files", data=b"{nope: [", timeout=5,
                             headers={**_START, "x-goog-api-key": "sim-free-key-1"})
    assert not_json.status_code == 400


def test_a_500_the_body_causes_is_not_retried_five_times(sim: RunningSimulator) -> None:
    sim.add_fault(kind="500")
    try:
        before = sim.stats()["requests"]
        with run_gateway(sim.url, fallback={}) as gateway:
            answer = requests.post(
                gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "hi"}]}]},
                headers={"x-goog-api-key": TOKEN}, timeout=10)
        assert answer.status_code == 500
        assert sim.stats()["requests"] - before == 2  # once more, on another project
    finally:
        sim.clear_faults()


def test_upload_url_behind_a_tls_terminating_proxy(sim: RunningSimulator) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gemini.example.com"}
    with run_gateway(sim.url, trusted_proxies=["127.0.0.1/32"]) as behind:
        start = requests.post(behind.url + "/upload/v1beta/files", timeout=5,
                              json={"file": {"displayName": "x"}},
                              headers={**_START, **forwarded, "x-goog-api-key": TOKEN})
        assert start.headers["x-goog-upload-url"].startswith(
            "https://gemini.example.com/upload/v1beta/files?upload_id=")
    with run_gateway(sim.url) as untrusted:  # a stranger's X-Forwarded-* is not believed
        start = requests.post(untrusted.url + "/upload/v1beta/files", timeout=5,
                              json={"file": {"displayName": "x"}},
                              headers={**_START, **forwarded, "x-goog-api-key": TOKEN})
        assert start.headers["x-goog-upload-url"].startswith(untrusted.url + "/upload/")
    with run_gateway(sim.url, server={"public_url": "https://api.example.org/gemini"}) as pub:
        start = requests.post(pub.url + "/upload/v1beta/files", timeout=5,
                              json={"file": {"displayName": "x"}},
                              headers={**_START, "x-goog-api-key": TOKEN})
        assert start.headers["x-goog-upload-url"].startswith(
            "https://api.example.org/gemini/upload/v1beta/files?upload_id=")


def test_cors_for_configured_origins_only(sim: RunningSimulator,
                                          gateway: RunningGateway) -> None:
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, x-goog-api-key"}
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    # None by default: no CORS headers, and the preflight is not answered for a browser.
    assert "Access-Control-Allow-Origin" not in requests.options(
        gateway.url + path, headers=preflight, timeout=5).headers
    with run_gateway(sim.url, cors={"allowed_origins": ["https://app.example.com"]}) as cors:
        for target in (path, "/v1/chat/completions", "/upload/v1beta/files"):
            answer = requests.options(cors.url + target, headers=preflight, timeout=5)
            assert answer.status_code == 204, (target, answer.text)
            assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert "x-goog-api-key" in answer.headers["Access-Control-Allow-Headers"]
        called = requests.post(cors.url + path, json={"contents": [{"parts": [{"text": "hi"}]}]},
                               headers={"Origin": "https://app.example.com",
                                        "x-goog-api-key": TOKEN}, timeout=5)
        assert called.status_code == 200
        assert called.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "x-gemgate-request-id" in called.headers["Access-Control-Expose-Headers"]
        streamed = requests.post(cors.url + path.replace("generateContent",
                                                         "streamGenerateContent") + "?alt=sse",
                                 json={"contents": [{"parts": [{"text": "hi"}]}]},
                                 headers={"Origin": "https://app.example.com",
                                          "x-goog-api-key": TOKEN}, timeout=5)
        assert streamed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        stranger = requests.options(cors.url + path, timeout=5,
                                    headers={**preflight, "Origin": "https://evil.example"})
        assert stranger.status_code == 403
        assert "Access-Control-Allow-Origin" not in stranger.headers


def test_unversioned_models_paths_are_v1beta(gateway: RunningGateway) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    answers = [requests.post(gateway.url + path, json=body, timeout=5,
                             headers={"x-goog-api-key": TOKEN}) for path in
               ("/v1beta/models/gemini-2.5-flash:generateContent",
                "/models/gemini-2.5-flash:generateContent")]
    assert [a.status_code for a in answers] == [200, 200]
    texts = [a.json()["candidates"][0]["content"]["parts"][0]["text"] for a in answers]
    assert texts[0] == texts[1]
    listed = requests.get(gateway.url + "/models/gemini-2.5-flash", timeout=5,
                          headers={"x-goog-api-key": TOKEN})
    assert listed.status_code == 200 and listed.json()["name"] == "models/gemini-2.5-flash"
    lost = requests.post(gateway.url + "/chat/completions", json={}, timeout=5,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert lost.status_code == 404 and "/v1" in lost.json()["error"]["hint"]


def test_every_request_gets_one_access_log_line(sim: RunningSimulator) -> None:
    stream = io.StringIO()
    setup_logging("INFO", [], stream=stream)
    try:
        with run_gateway(sim.url) as gateway:
            requests.get(gateway.url + "/nowhere/at/all", timeout=5)
            start = requests.post(gateway.url + "/upload/v1beta/files", timeout=5,
                                  json={"file": {"displayName": "x"}},
                                  headers={**_START, "x-goog-api-key": TOKEN})
            requests.post(start.headers["x-goog-upload-url"], data=b"hello", timeout=5,
                          headers={"X-Goog-Upload-Command": "upload, finalize",
                                   "X-Goog-Upload-Offset": "0"})
            requests.get(gateway.url + "/healthz", timeout=5)
            time.sleep(0.2)
    finally:
        setup_logging("INFO", [])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()
             if '"gemgate.access"' in line]
    routes = [line["route"] for line in lines]
    assert routes == ["/nowhere/at/all", "/upload/v1beta/files", "/upload/v1beta/files",
                      "/healthz"], routes
    assert [line["status"] for line in lines] == [404, 200, 200, 200]
    assert all(line["request_id"] for line in lines)
