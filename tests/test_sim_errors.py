"""Every error the simulator reproduces arrives as the SDK's own exception, code and status."""

from __future__ import annotations

import pytest
import requests
from google.genai import errors, types

from gemgate.google_errors import find_detail
from gemgate.simulator import RunningSimulator, SimProject
from tests.conftest import post, sim_sdk

GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


def _raised(client_call: object) -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        client_call()  # type: ignore[operator]
    return caught.value


def _generate(sim: RunningSimulator, key: str = "sim-free-key-1",
              model: str = "gemini-2.5-flash") -> errors.APIError:
    client = sim_sdk(sim, key)
    return _raised(lambda: client.models.generate_content(model=model, contents="hello"))


def test_missing_key_is_403_permission_denied(gemini_simulator: RunningSimulator) -> None:
    answer = post(gemini_simulator.url + GENERATE, HELLO, key=None)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in error["message"]


def test_unknown_key_is_400_api_key_invalid(gemini_simulator: RunningSimulator) -> None:
    error = _generate(gemini_simulator, key="not-a-real-key")
    assert isinstance(error, errors.ClientError)
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "API key not valid. Please pass a valid API key."
    assert find_detail(error.details["error"], "ErrorInfo")["reason"] == "API_KEY_INVALID"


def test_key_by_query_parameter(gemini_simulator: RunningSimulator) -> None:
    answer = post(gemini_simulator.url + GENERATE, HELLO, key=None,
                  params={"key": "sim-paid-key-1"})
    assert answer.status_code == 200
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"]


@pytest.mark.parametrize(("state", "code", "status", "reason", "text"), [
    ("api_disabled", 403, "PERMISSION_DENIED", "SERVICE_DISABLED",
     "Generative Language API has not been used in project"),
    ("suspended", 403, "PERMISSION_DENIED", "CONSUMER_SUSPENDED", "has been suspended"),
    ("region_blocked", 400, "FAILED_PRECONDITION", None,
     "User location is not supported for the API use."),
    ("free_tier_unavailable", 400, "FAILED_PRECONDITION", None,
     "Gemini API free tier is not available in your country"),
    ("ip_restricted", 403, "PERMISSION_DENIED", "API_KEY_IP_ADDRESS_BLOCKED",
     "has an IP address restriction"),
    ("referrer_restricted", 403, "PERMISSION_DENIED", "API_KEY_HTTP_REFERRER_BLOCKED",
     "Requests from referer"),
    ("api_restricted", 403, "PERMISSION_DENIED", "API_KEY_SERVICE_BLOCKED",
     "are blocked"),
])
def test_project_states(gemini_simulator: RunningSimulator, state: str, code: int, status: str,
                        reason: str | None, text: str) -> None:
    gemini_simulator.add_project(SimProject(name="troubled", keys=["troubled-key"], state=state,
                                            number=424242))
    error = _generate(gemini_simulator, key="troubled-key")
    assert (error.code, error.status) == (code, status)
    assert text in error.message
    if reason:
        assert find_detail(error.details["error"], "ErrorInfo")["reason"] == reason
    if state == "api_disabled":
        assert "project=424242" in error.message
    if state == "suspended":
        assert "api_key:troubled-key" in error.message  # as Google does: gateways must mask it


def test_unknown_model_is_404_with_googles_message(gemini_simulator: RunningSimulator) -> None:
    error = _generate(gemini_simulator, model="gemini-2.5-flsh")
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message.startswith("models/gemini-2.5-flsh is not found for API version v1")
    assert "Call ListModels" in error.message
    client = sim_sdk(gemini_simulator)
    assert _raised(lambda: client.models.get(model="nope")).code == 404


def test_embedding_model_cannot_generate(gemini_simulator: RunningSimulator) -> None:
    error = _generate(gemini_simulator, model="text-embedding-004")
    assert error.code == 404
    assert "not supported for generateContent" in error.message


@pytest.mark.parametrize(("body", "content", "needle"), [
    (None, b'{"contents": [', "Invalid JSON payload received"),
    ({"contents": []}, None, "contents is not specified"),
    ({}, None, "contents is not specified"),
    ({"contents": [{"parts": []}]}, None, "must not be empty"),
    ({"contents": [{"parts": [{"bogus": 1}]}]}, None, "required oneof field 'data'"),
    ({**HELLO, "generationConfig": {"temperature": "hot"}}, None,
     "Invalid value at 'generation_config.temperature' (TYPE_FLOAT)"),
    ({**HELLO, "generationConfig": {"maxOutputTokens": 1.5}}, None, "TYPE_INT32"),
    ({**HELLO, "generationConfig": {"temprature": 1}}, None, 'Unknown name "temprature"'),
    ({**HELLO, "mystery": True}, None, 'Unknown name "mystery"'),
    ({"contents": "hello"}, None, "Proto field is not repeating"),
    ({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}, None, "valid role"),
])
def test_bad_requests_are_400_invalid_argument(gemini_simulator: RunningSimulator,
                                               body: object, content: bytes | None,
                                               needle: str) -> None:
    answer = post(gemini_simulator.url + GENERATE, body, content=content,
                  headers={"content-type": "application/json"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert needle in error["message"]


def test_snake_case_fields_are_accepted(gemini_simulator: RunningSimulator) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "system_instruction": {"parts": [{"text": "Be terse."}]},
            "generation_config": {"max_output_tokens": 50, "stop_sequences": ["zzz"]}}
    assert post(gemini_simulator.url + GENERATE, body).status_code == 200


def test_thinking_budget_zero_on_a_thinking_only_model(gemini_simulator: RunningSimulator) -> None:
    client = sim_sdk(gemini_simulator)
    config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=0))
    error = _raised(lambda: client.models.generate_content(model="gemini-2.5-pro",
                                                          contents="hi", config=config))
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert "only works in thinking mode" in error.message


@pytest.mark.parametrize(("kind", "code", "status", "text"), [
    ("500", 500, "INTERNAL", "An internal error has occurred"),
    ("503", 503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    ("504", 504, "DEADLINE_EXCEEDED", "Deadline expired"),
])
def test_injected_server_errors(gemini_simulator: RunningSimulator, kind: str, code: int,
                                status: str, text: str) -> None:
    gemini_simulator.add_fault(kind=kind, count=1)
    error = _generate(gemini_simulator)
    assert isinstance(error, errors.ServerError)
    assert (error.code, error.status) == (code, status)
    assert text in error.message
    client = sim_sdk(gemini_simulator)
    assert client.models.generate_content(model="gemini-2.5-flash", contents="again").text


def test_faults_target_a_model_or_key(gemini_simulator: RunningSimulator) -> None:
    gemini_simulator.add_fault(kind="503", model="gemini-2.5-pro")
    gemini_simulator.add_fault(kind="500", key="sim-free-key-2")
    assert _generate(gemini_simulator, model="gemini-2.5-pro").code == 503
    assert _generate(gemini_simulator, key="sim-free-key-2").code == 500
    client = sim_sdk(gemini_simulator)
    assert client.models.generate_content(model="gemini-2.5-flash", contents="x").text


def test_probability_faults_are_reproducible_with_a_seed() -> None:
    from gemgate.simulator import run_simulator

    def pattern() -> list[int]:
        with run_simulator(seed=42) as sim:
            sim.add_fault(kind="503", probability=0.5)
            return [post(sim.url + GENERATE, HELLO).status_code for _ in range(20)]

    first = pattern()
    assert first == pattern()
    assert 3 <= first.count(503) <= 17


def test_every_nth_request_fails(gemini_simulator: RunningSimulator) -> None:
    gemini_simulator.add_fault(kind="500", every=3)
    codes = [post(gemini_simulator.url + GENERATE, HELLO).status_code for _ in range(9)]
    assert codes == [200, 200, 500] * 3


def test_connection_reset(gemini_simulator: RunningSimulator) -> None:
    gemini_simulator.add_fault(kind="reset", count=1)
    with pytest.raises(requests.ConnectionError):
        post(gemini_simulator.url + GENERATE, HELLO)
    assert post(gemini_simulator.url + GENERATE, HELLO).status_code == 200


def test_error_event_in_the_middle_of_a_stream(gemini_simulator: RunningSimulator) -> None:
    gemini_simulator.add_fault(kind="midstream", after_chunks=2, error_code=503)
    client = sim_sdk(gemini_simulator)
    received = []
    with pytest.raises(errors.ServerError) as caught:
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash",
                                                           contents="Write 80 words on snow."):
            received.append(chunk)
    assert len(received) == 2
    assert caught.value.code == 503


def test_latency_and_time_to_first_byte(gemini_simulator: RunningSimulator) -> None:
    import time

    gemini_simulator.add_fault(kind="latency", delay_ms=300, count=1)
    started = time.perf_counter()
    assert post(gemini_simulator.url + GENERATE, HELLO).status_code == 200
    assert time.perf_counter() - started >= 0.3
    gemini_simulator.config.ttfb_ms = 200
    client = sim_sdk(gemini_simulator)
    started = time.perf_counter()
    next(iter(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")))
    assert time.perf_counter() - started >= 0.2


def test_unknown_route_is_json_404(gemini_simulator: RunningSimulator) -> None:
    answer = requests.get(gemini_simulator.url + "/nothing/here", timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"
