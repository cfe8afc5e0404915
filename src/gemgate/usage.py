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


# A Live usageMetadata's names → generateContent's (what Tokens and the ledger read).
_LIVE_COUNTS = (("promptTokenCount", "promptTokenCount"),
                ("responseTokenCount", "candidatesTokenCount"),
                ("candidatesTokenCount", "candidatesTokenCount"),
                ("thoughtsTokenCount", "thoughtsTokenCount"),
                ("cachedContentTokenCount", "cachedContentTokenCount"),
                ("toolUsePromptTokenCount", "toolUsePromptTokenCount"),
                ("totalTokenCount", "totalTokenCount"))
_LIVE_DETAILS = (("promptTokensDetails", "promptTokensDetails"),
                 ("responseTokensDetails", "candidatesTokensDetails"),
                 ("candidatesTokensDetails", "candidatesTokensDetails"))


def add_usage(total: dict[str, Any], more: dict[str, Any]) -> None:
    """Adds one usageMetadata (a Live turn's) to a running total, counts and their split by
    modality both, named as generateContent names them."""
    for given, kept in _LIVE_COUNTS:
        if isinstance(more.get(given), int):
            total[kept] = total.get(kept, 0) + more[given]
    for given, kept in _LIVE_DETAILS:
        details = more.get(given)
        if not isinstance(details, list):
            continue
        by_modality = {d["modality"]: d for d in total.setdefault(kept, [])}
        for detail in details:
            if isinstance(detail, dict) and isinstance(detail.get("tokenCount"), int):
                name = str(detail.get("modality") or "MODALITY_UNSPECIFIED")
                mine = by_modality.setdefault(name, {"modality": name, "tokenCount": 0})
                if mine not in total[kept]:
                    total[kept].append(mine)
                mine["tokenCount"] += detail["tokenCount"]


def modalities_of(usage: dict[str, Any] | None) -> str | None:
    """Tokens by modality for the ledger ("in TEXT 12 AUDIO 40; out AUDIO 40"), only when some
    were not text: an all-text request (nearly all of them) stores nothing, and pays one look
    at each detail (~0.5 µs) rather than the formatting (~4 µs)."""
    if not usage:
        return None
    sides = (("in", usage.get("promptTokensDetails")),
             ("out", usage.get("candidatesTokensDetails")))
    if not any(isinstance(d, dict) and d.get("modality") != "TEXT"
               for _, details in sides if isinstance(details, list) for d in details):
        return None
    return "; ".join(
        side + " " + " ".join(f"{d.get('modality')} {d.get('tokenCount', 0)}"
                              for d in details if isinstance(d, dict))
        for side, details in sides if isinstance(details, list) and details)
