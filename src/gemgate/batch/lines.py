"""The input of `gemgate batch`: one JSON object per line, each with an id.

A line is a Gemini GenerateContentRequest (`contents`, …) or an OpenAI chat body (`messages`,
…) with an `id`; Google's Batch API file format (`{"key": …, "request": {…}}`) is read too. A
line may name its `model` (OpenAI bodies do); else `--model` does. A line that cannot be read is
not fatal: it becomes an error line in the output, with what was wrong."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Line:
    seq: int  # its place in the input (the output keeps the order)
    id: str
    kind: str  # "gemini" or "openai"
    body: dict[str, Any]
    model: str | None
    problem: str | None = None  # why the line cannot be sent (it is answered with an error)


def read_lines(path: Path) -> Iterator[Line]:
    """Every line of `path`, in order, blank lines skipped; ids checked for duplicates."""
    seen: set[str] = set()
    with path.open("rb") as source:
        seq = 0
        for number, raw in enumerate(source, start=1):
            if not raw.strip():
                continue
            line = parse(seq, number, raw)
            if line.id in seen and line.problem is None:
                line = Line(seq, line.id, line.kind, {}, None,
                            f"line {number}: the id {line.id!r} was used by an earlier line")
            seen.add(line.id)
            seq += 1
            yield line


def parse(seq: int, number: int, raw: bytes) -> Line:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Line(seq, f"line-{number}", "gemini", {}, None, f"line {number}: not JSON ({exc})")
    if not isinstance(data, dict):
        return Line(seq, f"line-{number}", "gemini", {}, None,
                    f"line {number}: not a JSON object")
    given = data.get("id", data.get("key"))
    if not isinstance(given, (str, int)) or isinstance(given, bool) or str(given) == "":
        return Line(seq, f"line-{number}", "gemini", {}, None,
                    f"line {number}: no id (give each line an \"id\")")
    inner = data.get("request")
    body: dict[str, Any] = dict(inner) if isinstance(inner, dict) else {
        k: v for k, v in data.items() if k not in ("id", "key")}
    model = body.pop("model", None) if "messages" not in body else body.get("model")
    kind = "openai" if "messages" in body else "gemini"
    if kind == "gemini" and "contents" not in body:
        return Line(seq, str(given), kind, {}, None,
                    f"line {number}: neither contents (Gemini) nor messages (OpenAI)")
    model = str(model).removeprefix("models/") if isinstance(model, str) and model else None
    return Line(seq, str(given), kind, body, model)
