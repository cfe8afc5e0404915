"""Framing of generated answers as Gemini responses: whole, or as the chunks of a stream."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

from gemgate.simulator.content import Generation, Reply, stream_pieces
from gemgate.simulator.tokens import count_part


def response_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def usage(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
    """usageMetadata as Google writes it: zero counts other than the prompt's are left out."""
    meta: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        meta["candidatesTokenCount"] = candidates
    meta["totalTokenCount"] = prompt + candidates + thoughts
    meta["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return meta


def _candidate(reply: Reply, index: int, parts: list[dict[str, Any]],
               finished: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = parts
    candidate: dict[str, Any] = {"content": content}
    if finished:
        candidate["finishReason"] = reply.finish_reason
    candidate["index"] = index
    return candidate


def whole(generation: Generation, model: str) -> dict[str, Any]:
    candidates = [
        _candidate(reply, i, [*reply.thought_parts, *reply.parts], True)
        for i, reply in enumerate(generation.candidates)
    ]
    total = sum(reply.candidate_tokens for reply in generation.candidates)
    return {
        "candidates": candidates,
        "usageMetadata": usage(generation.prompt_tokens, total, generation.thoughts_tokens),
        "modelVersion": model,
        "responseId": response_id(),
    }


def chunks(generation: Generation, model: str) -> Iterator[dict[str, Any]]:
    """Each chunk carries only new parts; usage repeats in each; finishReason only on the last."""
    first = generation.candidates[0]
    pieces = stream_pieces(first)
    rid = response_id()
    emitted = 0
    for n, parts in enumerate(pieces):
        last = n == len(pieces) - 1
        emitted += sum(count_part(p) for p in parts if not p.get("thought"))
        candidates = [_candidate(first, 0, parts, last)]
        so_far = first.candidate_tokens if last else min(emitted, first.candidate_tokens)
        if last:  # other candidates, when asked for, arrive whole with the final chunk
            for i, reply in enumerate(generation.candidates[1:], start=1):
                candidates.append(_candidate(reply, i, reply.parts, True))
                so_far += reply.candidate_tokens
        yield {
            "candidates": candidates,
            "usageMetadata": usage(generation.prompt_tokens, so_far, generation.thoughts_tokens),
            "modelVersion": model,
            "responseId": rid,
        }
