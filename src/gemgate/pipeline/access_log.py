"""The access log: one JSON line per request, written when the request's Finished event comes
(the batching writer is gemgate.logs.AccessLog)."""

from __future__ import annotations

from gemgate.core.call import Call
from gemgate.core.events import Event, Finished
from gemgate.logs import access_log


def line(call: Call, event: Finished) -> dict[str, object]:
    last = call.attempts[-1] if call.attempts else None
    fields: dict[str, object] = {
        "request_id": call.request_id,
        "tenant": call.tenant.name if call.tenant else None,
        "method": call.method,
        "surface": call.surface,
        "route": f"/{call.version}/{call.path}" if call.version else f"/{call.path}",
        "model": call.model or None,
        "model_asked": call.model_asked if call.model_asked != call.model else None,
        "priority": call.priority,
        "stream": call.stream,
        "provider": last.provider if last else None,
        "project": last.project if last else None,
        "key": last.masked_key if last else None,
        "status": 499 if event.cancelled else event.status,
        "problem": event.problem,
        "attempts": len(call.attempts),
        "upstream_ms": round(sum(a.upstream_ms for a in call.attempts), 2),
        "total_ms": round(call.elapsed_ms(), 2),
    }
    if event.usage:
        fields["tokens"] = event.usage
    if call.trace_id is not None:
        fields["trace_id"] = call.trace_id
    return fields


def write_line(call: Call | None, event: Event) -> None:
    """An Events listener: the line of each finished request."""
    if call is None or not isinstance(event, Finished):
        return
    writer = access_log()
    if writer is not None:
        writer.write(line(call, event))
