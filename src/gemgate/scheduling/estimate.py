"""A fast local estimate of a request's input tokens, for admission before Google counts them.

It errs high (every part rounded up, a little for the request's framing), so a reservation is
never smaller than what Google will charge against the TPM limit; real usage replaces it after.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from gemgate.shapes import items

_MEDIA_TOKENS = 258  # one image; Google's count for small media
_FRAMING = 4


def _count(text: str) -> int:
    if text.isascii():
        return math.ceil(len(text) / 4)
    cjk = sum(1 for c in text if "\u2e80" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af")
    return cjk + math.ceil((len(text) - cjk) / 4)


def _contents(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every Content of a generate, embed or batch-embed request."""
    for content in items(body.get("contents")):
        if isinstance(content, dict):
            yield content
    for single in (body.get("systemInstruction"), body.get("system_instruction"),
                   body.get("content")):
        if isinstance(single, dict):
            yield single
    for request in items(body.get("requests")):  # batchEmbedContents
        if isinstance(request, dict) and isinstance(request.get("content"), dict):
            yield request["content"]


def texts_of(body: dict[str, Any]) -> Iterator[str]:
    for content in _contents(body):
        for part in items(content.get("parts")):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]


def estimate_tokens(body: Any) -> int:
    if not isinstance(body, dict):
        return _FRAMING
    total = _FRAMING
    for content in _contents(body):
        for part in items(content.get("parts")):
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                total += _count(part["text"])
            elif any(k in part for k in ("inlineData", "inline_data", "fileData", "file_data")):
                total += _MEDIA_TOKENS
            else:
                total += _count(str(part))
    if body.get("tools"):
        total += _count(str(body["tools"]))
    return total


class OutputGuess:
    """How many tokens a model's answers run to, learnt from the answers themselves: a budget
    reservation needs the cost before the request runs, and output is most of it. The guess
    is a moving average of recent answers (per model), capped by the request's
    maxOutputTokens.
    Before any answer is seen, `first_guess` tokens: erring high only makes requests near the
    end of a budget go one at a time."""

    def __init__(self, first_guess: int = 1024) -> None:
        self.first_guess = first_guess
        self._average: dict[str, float] = {}

    def observe(self, model: str, output_tokens: int) -> None:
        seen = self._average.get(model)
        self._average[model] = (output_tokens if seen is None
                                else 0.8 * seen + 0.2 * output_tokens)

    def guess(self, model: str, body: Any) -> int:
        guess = math.ceil(self._average.get(model, self.first_guess))
        config = body.get("generationConfig") if isinstance(body, dict) else None
        cap = config.get("maxOutputTokens") if isinstance(config, dict) else None
        return min(guess, cap) if isinstance(cap, int) and cap > 0 else guess
