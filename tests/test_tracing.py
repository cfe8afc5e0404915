"""OpenTelemetry traces (the otel extra): a span per request continuing the client's
traceparent, child spans per stage and upstream attempt, GenAI attributes, the traceparent
carried to the upstream and back, the trace id in the access log line."""

from __future__ import annotations

import io
import json
import logging

import requests
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gemgate.logs import setup_logging
from gemgate.simulator import run_simulator
from tests.conftest import TOKEN, run_gateway

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def test_a_request_is_one_trace_from_the_client_to_the_upstream_and_back() -> None:
    stream = io.StringIO()
    setup_logging("INFO", [], stream=stream)
    exporter = InMemorySpanExporter()
    try:
        with run_simulator() as sim, run_gateway(sim.url, tracing={"enabled": True}) as gw:
            from gemgate.app import TRACING

            gw.app[TRACING].provider.add_span_processor(SimpleSpanProcessor(exporter))
            answer = requests.post(
                gw.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"parts": [{"text": "trace me"}]}]}, timeout=10,
                headers={"x-goog-api-key": TOKEN, "traceparent": TRACEPARENT})
            assert answer.status_code == 200
            upstream = sim.stats()["recent"][-1]["headers"]["traceparent"]
    finally:
        logging.getLogger().handlers.clear()
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "generate_content gemini-2.5-flash")
    assert format(request.context.trace_id, "032x") == CLIENT_TRACE  # the client's trace
    assert request.attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert request.attributes["gen_ai.usage.output_tokens"] > 0
    children = {s.name for s in spans if s.parent and s.parent.span_id ==
                request.context.span_id}
    assert {"stage auth", "stage route", "stage relay", "attempt sim-free"} <= children or \
        {"stage auth", "stage route", "stage relay", "attempt sim-paid"} <= children
    # The upstream got the request span's context; the client gets it back.
    assert upstream.split("-")[1] == CLIENT_TRACE
    assert upstream.split("-")[2] == format(request.context.span_id, "016x")
    assert answer.headers["traceparent"] == upstream
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if '"gemgate.access"' in x]
    assert any(x.get("trace_id") == CLIENT_TRACE for x in lines)
