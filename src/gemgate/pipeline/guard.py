"""The guard stage: read what the request is (model, action, stream mode) and refuse what can
never succeed (malformed JSON) before it costs an upstream attempt."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

import orjson

from gemgate.core.call import Call
from gemgate.core.refusal import Refusal, refusal
from gemgate.problems import ProblemId

MODEL_ACTIONS = frozenset({"generateContent", "streamGenerateContent", "countTokens",
                           "embedContent", "batchEmbedContents"})


def check_path(call: Call) -> ProblemId | None:
    """PATH_INVALID for a path that would mean something else once Google normalises it:
    `files/../models/gemini-2.5-pro:generateContent` must not slip past the model's rights,
    nor an encoded `/`, `\\` or control character past the checks that read the path."""
    path = call.path
    if "%" not in path and "/." not in path and not path.startswith("."):
        return None  # the common case, decided without splitting
    for segment in path.split("/"):
        plain = unquote(segment)
        if plain in (".", "..") or any(c in plain for c in "/\\") or \
                any(ord(c) < 32 or ord(c) == 127 for c in plain):
            return ProblemId.PATH_INVALID
    return None


async def gemini(call: Call) -> Refusal | None:
    """The decode stage of Gemini's own surface: the path, what it asks, and its JSON."""
    problem = check_path(call)
    if problem is None:
        describe(call)
        problem = check_json(call)
    return refusal(problem) if problem is not None else None


async def upload_start(call: Call) -> Refusal | None:
    """The decode stage of an upload's start: the path only (its body is Google's to read)."""
    problem = check_path(call)
    return refusal(problem) if problem is not None else None


def describe(call: Call) -> None:
    """Fills in model, action and the stream mode from the path and query."""
    if not call.path.startswith("models/"):
        return
    name, _, action = call.path[len("models/"):].partition(":")
    call.model, call.action = name, action
    if action == "streamGenerateContent":
        call.stream = True
        call.sse = ("alt", "sse") in parse_qsl(call.query) if call.query else False


def check_json(call: Call) -> ProblemId | None:
    """MALFORMED_JSON when a model call's body is not a JSON object; the parsed body otherwise
    stays on the call for later stages."""
    if call.action not in MODEL_ACTIONS or call.method != "POST":
        return None
    try:
        call.parsed = orjson.loads(call.body) if call.body else {}
    except orjson.JSONDecodeError:
        return ProblemId.MALFORMED_JSON
    return None if isinstance(call.parsed, dict) else ProblemId.MALFORMED_JSON
