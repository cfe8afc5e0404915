"""`model: auto`: pick the cheapest model likely to do the job, and say why.

The score adds points for what makes a request hard; the total picks the light, standard or heavy
model. Each point is named in the reason, returned to the client in `x-gemgate-route`.

| Signal | Points |
|---|---|
| prompt longer than 100 / 500 / 2,000 tokens | 1 / 2 / 3 |
| code in the prompt (fences, definitions, imports, statements) | 2 |
| reasoning or analysis cues (why, prove, compare, review, design, 分析 …), each | 1, max 3 |
| attachments (images, files) | 1 |
| tools declared | 1 |
| a long answer asked for (maxOutputTokens > 1,000 / 4,000, or "N words" > 300 / 800) | 1 / 2 |

Score 0–1 → light, 2–4 → standard, 5 and more → heavy.
"""

from __future__ import annotations

import re
from typing import Any

from gemgate.config import AutoConfig
from gemgate.scheduling.estimate import estimate_tokens, texts_of
from gemgate.shapes import items

_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[:(]|\bfunction \w*\(|\bimport \w+|#include|"
                   r"\bSELECT\b.+\bFROM\b|\breturn\b.*;|=>|\bpublic static\b", re.IGNORECASE)
_REASONING = ("why", "prove", "analy", "reason", "step by step", "compare", "trade-off",
              "tradeoff", "design", "architect", "debug", "review", "explain", "derive",
              "evaluate", "plan", "为什么", "分析", "证明", "推理", "比较", "设计", "审查", "解释")
_WORDS = re.compile(r"\b(\d{2,5})\s+words?\b", re.IGNORECASE)


def _attachments(body: dict[str, Any]) -> int:
    count = 0
    for content in items(body.get("contents")):
        for part in items(content.get("parts")) if isinstance(content, dict) else ():
            if isinstance(part, dict) and any(k in part for k in ("inlineData", "inline_data",
                                                                  "fileData", "file_data")):
                count += 1
    return count


def _asked_output(body: dict[str, Any], text: str) -> int:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    limit = config.get("maxOutputTokens") or config.get("max_output_tokens") or 0
    words = max((int(n) for n in _WORDS.findall(text)), default=0)
    try:
        return max(int(limit), words * 4 // 3)
    except (TypeError, ValueError):
        return words * 4 // 3


def choose(body: dict[str, Any], models: AutoConfig) -> tuple[str, str]:
    """The model for this request, and the reason in words."""
    text = "\n".join(texts_of(body))
    lowered = text.lower()
    points: list[tuple[int, str]] = []
    tokens = estimate_tokens(body)
    for threshold, score in ((2000, 3), (500, 2), (100, 1)):
        if tokens > threshold:
            points.append((score, f"long prompt ({tokens} tokens) +{score}"))
            break
    if _CODE.search(text):
        points.append((2, "code +2"))
    cues = [cue for cue in _REASONING if cue in lowered][:3]
    if cues:
        points.append((len(cues), f"reasoning cues ({', '.join(cues)}) +{len(cues)}"))
    if _attachments(body):
        points.append((1, "attachments +1"))
    if body.get("tools"):
        points.append((1, "tools +1"))
    asked = _asked_output(body, text)
    if asked > 1000:
        extra = 2 if asked > 4000 else 1
        points.append((extra, f"long answer asked (~{asked} tokens) +{extra}"))
    score = sum(p for p, _ in points)
    model = models.light if score <= 1 else models.standard if score <= 4 else models.heavy
    why = "; ".join(reason for _, reason in points) or "short, plain request"
    return model, f"auto: score {score} -> {model} ({why})"  # HTTP headers are ASCII
