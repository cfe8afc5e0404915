"""A request's text parts scanned and masked: each value found becomes a typed placeholder
(`[PHONE_1]`), the same value the same placeholder throughout the request, so the model still
sees that two mentions are one person. Only text is touched — `text` parts (every turn, the
system instruction) and the strings of tool calls and tool results — never `inlineData` or
`fileData` (binary, or a reference to it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gemgate.guardrails.detectors import Detectors

_BINARY = frozenset({"inlineData", "fileData", "inline_data", "file_data"})
_TOOLS = frozenset({"functionCall", "functionResponse", "function_call", "function_response"})

MASKING = frozenset({"redact", "restore", "block"})  # a value these act on never leaves


@dataclass(slots=True)
class Redaction:
    """What one request's scan found and did."""

    actions: dict[str, str]  # kind → redact, restore, block or log
    found: Counter[str] = field(default_factory=Counter)  # kind → values seen
    placeholders: dict[str, str] = field(default_factory=dict)  # value → placeholder
    originals: dict[str, str] = field(default_factory=dict)  # placeholder → value (restore)
    blocked: set[str] = field(default_factory=set)  # kinds whose action is block

    def placeholder(self, kind: str, value: str) -> str:
        known = self.placeholders.get(value)
        if known is None:
            number = sum(1 for p in self.placeholders.values() if p.startswith(f"[{kind}_")) + 1
            known = self.placeholders[value] = f"[{kind}_{number}]"
            if self.actions.get(kind) == "restore":
                self.originals[known] = value
        return known


def redact_text(text: str, detectors: Detectors, redaction: Redaction) -> str:
    """The text with every value whose action masks it replaced (one pass, from the end)."""
    pieces, last = [], 0
    for found in detectors.find(text):
        action = redaction.actions.get(found.kind, "log")
        redaction.found[found.kind] += 1
        if action == "block":
            redaction.blocked.add(found.kind)
        if action not in MASKING:
            continue
        pieces += [text[last:found.start], redaction.placeholder(found.kind, found.value)]
        last = found.end
    if last == 0:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def redact_body(body: Any, detectors: Detectors, redaction: Redaction) -> bool:
    """Masks the body's text in place; True when anything changed."""
    changed = False
    for holder, key, text in strings(body):
        masked = redact_text(text, detectors, redaction)
        if masked != text:
            holder[key], changed = masked, True
    return changed


def strings(node: Any, all_strings: bool = False) -> Iterator[tuple[Any, Any, str]]:
    """(container, key, text) for every text the model reads: `text` parts anywhere, and
    every string inside a tool call or a tool result; never binary parts."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, str):
            if all_strings or key == "text":
                yield node, key, value
        elif isinstance(value, dict | list) and key not in _BINARY:
            yield from strings(value, all_strings or key in _TOOLS)
