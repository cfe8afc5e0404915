"""gemgate's own refusals: Google's error shape, a hint in the client's language, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from google.genai import errors

from gemgate.simulator import RunningSimulator
from tests.conftest import ADMIN, TOKEN, RunningGateway, run_gateway, sdk

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
HELLO = {"contents": [{"parts": [{"text": "hello"}]}]}


@pytest.fixture(scope="module")
def gateway(sim: RunningSimulator) -> Iterator[RunningGateway]:
    """A gateway with a small body limit, so the 413 test stays light."""
    with run_gateway(sim.url, max_body_bytes=64 * 1024) as running:
        yield running


def _error(answer: requests.Response, code: int, status: str) -> dict[str, object]:
    assert answer.status_code == code
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-gemgate-request-id"]
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert error["hint"]
    return error  # type: ignore[no-any-return]


def test_missing_and_wrong_tokens(gateway: RunningGateway) -> None:
    _error(requests.post(gateway.url + GENERATE, json=HELLO, timeout=5), 401, "UNAUTHENTICATED")
    client = sdk(gateway.url, "wrong-token")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    assert "token" in caught.value.details["error"]["hint"]


def test_a_real_google_key_is_refused_with_a_clear_reason(gateway: RunningGateway) -> None:
    google_shaped = "AIza" + "Sy" + "x" * 33
    answer = requests.post(gateway.url + GENERATE, json=HELLO, timeout=5,
                           headers={"x-goog-api-key": google_shaped})
    error = _error(answer, 401, "UNAUTHENTICATED")
    assert "Google API key" in str(error["hint"])
    assert google_shaped not in answer.text


def test_hints_follow_accept_language(gateway: RunningGateway) -> None:
    english = _error(requests.post(gateway.url + GENERATE, json=HELLO, timeout=5), 401,
                     "UNAUTHENTICATED")
    chinese = _error(requests.post(gateway.url + GENERATE, json=HELLO, timeout=5,
                                   headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}),
                     401, "UNAUTHENTICATED")
    assert english["hint"] != chinese["hint"]
    assert "令牌" in str(chinese["hint"])
    preferred = _error(requests.post(gateway.url + GENERATE, json=HELLO, timeout=5,
                                     headers={"Accept-Language": "en;q=0.5, zh;q=0.9"}),
                       401, "UNAUTHENTICATED")
    assert preferred["hint"] == chinese["hint"]


def test_body_too_large_is_413(gateway: RunningGateway) -> None:
    big = {"contents": [{"parts": [{"text": "x" * 70_000}]}]}
    answer = requests.post(gateway.url + GENERATE, json=big, timeout=5,
                           headers={"x-goog-api-key": TOKEN})
    _error(answer, 413, "INVALID_ARGUMENT")


def test_malformed_json_is_refused_before_upstream(gateway: RunningGateway,
                                                   sim: RunningSimulator) -> None:
    before = sim.stats()["requests"]
    answer = requests.post(gateway.url + GENERATE, data=b"{nope", timeout=5,
                           headers={"x-goog-api-key": TOKEN})
    assert "JSON" in str(_error(answer, 400, "INVALID_ARGUMENT")["hint"])
    assert sim.stats()["requests"] == before


def test_unknown_route_is_404_in_googles_shape(gateway: RunningGateway) -> None:
    _error(requests.get(gateway.url + "/v2/models", timeout=5), 404, "NOT_FOUND")
    _error(requests.post(gateway.url + "/chat", timeout=5), 404, "NOT_FOUND")


def test_admin_api_needs_the_admin_key(gateway: RunningGateway) -> None:
    _error(requests.get(gateway.url + "/admin/pool", timeout=5), 403, "PERMISSION_DENIED")
    _error(requests.get(gateway.url + "/admin/pool", timeout=5,
                        headers={"Authorization": f"Bearer {TOKEN}"}), 403, "PERMISSION_DENIED")
    view = requests.get(gateway.url + "/admin/pool", timeout=5,
                        headers={"Authorization": f"Bearer {ADMIN}"})
    assert view.status_code == 200
    assert "sim-free-key-1" not in view.text and "sim-…ey-1" in view.text


def test_healthz(gateway: RunningGateway) -> None:
    answer = requests.get(gateway.url + "/healthz", timeout=5)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


def test_upload_url_is_rewritten_to_the_gateway(gateway: RunningGateway) -> None:
    start = requests.post(gateway.url + "/upload/v1beta/files", json={"file": {
        "displayName": "raw"}}, timeout=5, headers={
        "x-goog-api-key": TOKEN, "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Length": "5",
        "X-Goog-Upload-Header-Content-Type": "text/plain"})
    assert start.status_code == 200
    upload_url = start.headers["x-goog-upload-url"]
    assert upload_url.startswith(gateway.url + "/upload/v1beta/files?upload_id=")
    done = requests.post(upload_url, data=b"hello", timeout=5, headers={
        "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    assert done.status_code == 200 and done.headers["x-goog-upload-status"] == "final"
    assert done.json()["file"]["sizeBytes"] == "5"
    stale = requests.post(gateway.url + "/upload/v1beta/files?upload_id=nope", data=b"x",
                          timeout=5, headers={"X-Goog-Upload-Command": "upload, finalize"})
    _error(stale, 404, "NOT_FOUND")


def test_path_prefix(sim: RunningSimulator) -> None:
    with run_gateway(sim.url, path_prefix="/gemini") as prefixed:
        client = sdk(prefixed.url + "/gemini", TOKEN)
        assert client.models.generate_content(model="gemini-2.5-flash", contents="hi").text
        assert requests.get(prefixed.url + "/v1beta/models", timeout=5).status_code == 404
