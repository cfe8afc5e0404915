"""The guard stage: read what the request is (model, action, stream mode) and refuse what can
never succeed (malformed JSON) before it costs an upstream attempt."""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson

from gemgate.pipeline.call import Call

MODEL_ACTIONS = frozenset({"generateContent", "streamGenerateContent", "countTokens",
                           "embedContent", "batchEmbedContents"})


def describe(call: Call) -> None:
    """Fills in model, action and the stream mode from the path and query."""
    if not call.path.startswith("models/"):
        return
    name, _, action = call.path[len("models/"):].partition(":")
    call.model, call.action = name, action
    if action == "streamGenerateContent":
        call.stream = True
        call.sse = ("alt", "sse") in parse_qsl(call.query) if call.query else False


def check_json(call: Call) -> str | None:
    """MALFORMED_JSON when a model call's body is not a JSON object; the parsed body otherwise
    stays on the call for later stages."""
    if call.action not in MODEL_ACTIONS or call.method != "POST":
        return None
    try:
        call.parsed = orjson.loads(call.body) if call.body else {}
    except orjson.JSONDecodeError:
        return "MALFORMED_JSON"
    return None if isinstance(call.parsed, dict) else "MALFORMED_JSON"
