"""One pipeline: the native edge, the OpenAI edge and an upload's start run the same named
stages in the same order, and every stage reports to the same Events."""

from __future__ import annotations

import threading
from typing import Any

import requests
from openai import OpenAI

from gemgate.core.events import AttemptMade, Event, FellBack, Finished, StageEntered
from gemgate.pipeline.flow import STAGES
from gemgate.simulator import RunningSimulator
from tests.conftest import TOKEN, RunningGateway, run_gateway


class Recorder:
    """Every event of every call, by request id (events arrive on the server's thread)."""

    def __init__(self) -> None:
        self.by_call: dict[str, list[Event]] = {}
        self.lock = threading.Lock()

    def __call__(self, call: Any, event: Event) -> None:
        if call is None:
            return
        with self.lock:
            self.by_call.setdefault(call.request_id, []).append(event)

    def of(self, request_id: str) -> list[Event]:
        with self.lock:
            return list(self.by_call[request_id])


def _stages(events: list[Event]) -> list[str]:
    return [e.stage for e in events if isinstance(e, StageEntered)]


def test_every_edge_runs_the_same_stages_in_the_same_order(gateway: RunningGateway) -> None:
    recorder = Recorder()
    gateway.events.subscribe(recorder)
    native = requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                           json={"contents": [{"parts": [{"text": "hi"}]}]},
                           headers={"x-goog-api-key": TOKEN}, timeout=10)
    chat = OpenAI(api_key=TOKEN, base_url=gateway.url + "/v1").chat.completions.with_raw_response\
        .create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    upload = requests.post(gateway.url + "/upload/v1beta/files", timeout=10,
                           json={"file": {"displayName": "x"}},
                           headers={"x-goog-api-key": TOKEN, "X-Goog-Upload-Protocol":
                                    "resumable", "X-Goog-Upload-Command": "start",
                                    "X-Goog-Upload-Header-Content-Length": "5",
                                    "X-Goog-Upload-Header-Content-Type": "text/plain"})
    ids = [native.headers["x-gemgate-request-id"], chat.headers["x-gemgate-request-id"],
           upload.headers["x-gemgate-request-id"]]
    # This gateway has no guardrails policy: that stage is skipped (tests/test_guardrails.py).
    expected = [stage for stage in STAGES if stage != "guardrails"]
    for request_id in ids:
        events = recorder.of(request_id)
        assert _stages(events) == expected, (request_id, _stages(events))
        assert any(isinstance(e, AttemptMade) and e.status == 200 for e in events)
        assert isinstance(events[-1], Finished) and events[-1].status == 200


def test_a_refusal_stops_at_its_stage_and_is_finished(gateway: RunningGateway) -> None:
    recorder = Recorder()
    gateway.events.subscribe(recorder)
    bad = requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                        data=b"{not json", headers={"x-goog-api-key": TOKEN}, timeout=10)
    events = recorder.of(bad.headers["x-gemgate-request-id"])
    assert _stages(events) == ["auth", "read", "decode"]
    assert isinstance(events[-1], Finished) and events[-1].problem == "MALFORMED_JSON"


def test_fallbacks_are_told(sim: RunningSimulator) -> None:
    sim.add_fault(kind="503", model="gemini-2.5-flash")
    try:
        with run_gateway(sim.url, retry={"attempts": 2, "base_delay_s": 0.01}) as gateway:
            recorder = Recorder()
            gateway.events.subscribe(recorder)
            answer = requests.post(
                gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "hi"}]}]},
                headers={"x-goog-api-key": TOKEN}, timeout=10)
            assert answer.status_code == 200
            events = recorder.of(answer.headers["x-gemgate-request-id"])
            fell = [e for e in events if isinstance(e, FellBack)]
            assert fell and fell[0].from_model == "gemini-2.5-flash"
            assert fell[0].to_model == "gemini-2.5-flash-lite"
            assert fell[0].because == "MODEL_OVERLOADED"
    finally:
        sim.clear_faults()
