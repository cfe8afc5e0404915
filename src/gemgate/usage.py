"""Finding `usageMetadata` in a response or in the last chunk of a stream without parsing the
whole body: the last occurrence is the final count."""

from __future__ import annotations

import re
from typing import Any

import orjson

_MARK = b'"usageMetadata"'
_BRACES = re.compile(rb"[{}]")


def find_usage(body: bytes) -> dict[str, Any] | None:
    at = body.rfind(_MARK)
    if at < 0:
        return None
    depth, start = 0, -1
    # Jump from brace to brace in C rather than stepping through every byte in Python.
    for brace in _BRACES.finditer(body, at + len(_MARK), at + 8192):
        if brace.group() == b"{":
            if depth == 0:
                start = brace.start()
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                try:
                    found = orjson.loads(body[start : brace.end()])
                except orjson.JSONDecodeError:
                    return None
                return found if isinstance(found, dict) else None
            if depth < 0:
                return None
    return None
