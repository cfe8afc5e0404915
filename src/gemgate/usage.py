"""Finding `usageMetadata` in a response or in the last chunk of a stream without parsing the
whole body: the last occurrence is the final count."""

from __future__ import annotations

from typing import Any

import orjson

_MARK = b'"usageMetadata"'


def find_usage(body: bytes) -> dict[str, Any] | None:
    at = body.rfind(_MARK)
    if at < 0:
        return None
    start = body.find(b"{", at + len(_MARK))
    if start < 0:
        return None
    depth = 0
    for index in range(start, min(len(body), start + 4096)):
        byte = body[index]
        if byte == 0x7B:  # {
            depth += 1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                try:
                    found = orjson.loads(body[start : index + 1])
                except orjson.JSONDecodeError:
                    return None
                return found if isinstance(found, dict) else None
    return None
