"""OpenTelemetry traces (optional: `pip install 'gemgate[otel]'`, `tracing.enabled: true`).

A span per request, named by the GenAI conventions (`generate_content gemini-2.5-flash`),
continuing the client's W3C `traceparent` when it sent one; a child span per stage it passed and
per upstream attempt; GenAI attributes (`gen_ai.system`, `gen_ai.operation.name`,
`gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
`gen_ai.usage.output_tokens`). The request span's `traceparent` goes to the upstream with each
attempt and back to the client in the answer's headers; the access log line carries the trace
id. Everything is built from the pipeline's events: no stage knows about tracing.

Spans go to an OTLP/HTTP endpoint (`tracing.otlp_endpoint`, or the standard
OTEL_EXPORTER_OTLP_* variables), or nowhere but the processors a program adds.
"""

from __future__ import annotations

import time
from typing import Any

from gemgate.config import TracingConfig
from gemgate.core.call import Call
from gemgate.core.events import AttemptMade, Events, Finished, StageEntered
from gemgate.prices import Tokens

try:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the extra is not installed
    trace = None  # type: ignore[assignment]

_PROPAGATOR = TraceContextTextMapPropagator() if trace is not None else None


def available() -> bool:
    return trace is not None


class Tracing:
    def __init__(self, config: TracingConfig, events: Events) -> None:
        if trace is None:
            raise RuntimeError("tracing needs the otel extra: pip install 'gemgate[otel]'")
        self.provider = TracerProvider(resource=Resource.create(
            {"service.name": config.service_name}))
        if config.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(
                OTLPSpanExporter(endpoint=config.otlp_endpoint)))
        self.tracer = self.provider.get_tracer("gemgate")
        events.subscribe(self._on_event, (StageEntered, AttemptMade))
        events.record_with(self._on_finished)

    def _on_event(self, call: Call | None, event: Any) -> None:
        if call is None:
            return
        if isinstance(event, StageEntered):
            if event.stage == "auth":
                self._start(call)
            self._stage(call, event.stage)
        elif isinstance(event, AttemptMade) and call.trace is not None:
            end = time.time_ns()
            start = end - int(event.upstream_ms * 1e6)
            span = self.tracer.start_span(
                f"attempt {event.provider or event.project}", context=call.trace["context"],
                start_time=start, kind=trace.SpanKind.CLIENT, attributes={
                    "gen_ai.system": "gemini" if event.provider is None else event.provider,
                    "gemgate.project": event.project, "gemgate.key": event.key,
                    "http.response.status_code": event.status,
                    "gemgate.problem": str(event.problem or "")})
            span.end(end_time=end)

    def _start(self, call: Call) -> None:
        parent = _PROPAGATOR.extract(call.headers) if _PROPAGATOR else None
        span = self.tracer.start_span("gemgate request", context=parent,
                                      kind=trace.SpanKind.SERVER)
        context = trace.set_span_in_context(span)
        carrier: dict[str, str] = {}
        assert _PROPAGATOR is not None
        _PROPAGATOR.inject(carrier, context=context)
        call.headers["traceparent"] = carrier["traceparent"]  # what the upstream receives
        call.trace = {"span": span, "context": context, "stage": None,
                      "traceparent": carrier["traceparent"]}
        call.trace_id = format(span.get_span_context().trace_id, "032x")

    def _stage(self, call: Call, stage: str) -> None:
        state = call.trace
        if state is None:
            return
        if state["stage"] is not None:
            state["stage"].end()
        state["stage"] = self.tracer.start_span(f"stage {stage}", context=state["context"])

    def _on_finished(self, call: Call, event: Finished) -> None:
        state = call.trace
        if state is None:
            return
        if state["stage"] is not None:
            state["stage"].end()
        span = state["span"]
        operation = "chat" if call.surface == "openai" else (
            "embeddings" if "mbed" in call.action else "generate_content")
        span.update_name(f"{operation} {call.model or call.path}")
        tokens = Tokens.of(event.usage)
        span.set_attributes({
            "gen_ai.system": "gemini", "gen_ai.operation.name": operation,
            "gen_ai.request.model": call.model_asked or call.model,
            "gen_ai.response.model": call.model, "gen_ai.usage.input_tokens": tokens.prompt,
            "gen_ai.usage.output_tokens": tokens.candidates + tokens.thoughts,
            "http.response.status_code": 499 if event.cancelled else event.status,
            "gemgate.request_id": call.request_id, "gemgate.problem": str(event.problem or ""),
            "gemgate.tenant": call.tenant.name if call.tenant else "",
            "gemgate.cache": call.cache or ""})
        if event.status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()
