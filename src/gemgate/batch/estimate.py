"""`gemgate batch estimate`: what a batch input will cost before it runs — input tokens counted
by countTokens through the gateway (or estimated locally with `--offline`), answers priced at
each line's maxOutputTokens (or `--output-tokens`, 500 when neither says), at the interactive
price and at the Batch API's (half)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gemgate.batch.lines import Line, read_lines
from gemgate.config import Settings
from gemgate.pipeline.batches import BATCH_SHARE
from gemgate.prices import PriceBook, Tokens, cost_of
from gemgate.scheduling.estimate import estimate_tokens

DEFAULT_OUTPUT = 500
_AT_ONCE = 16


async def estimate_file(source: Path, model: str | None, output_tokens: int | None,
                        gateway: str | None, token: str | None,
                        settings: Settings | None) -> str:
    prices = PriceBook.configured(settings.prices if settings is not None else {})
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])  # lines, in, out, $
    unread = 0
    pending: list[Line] = []
    async with aiohttp.ClientSession() as session:
        for line in read_lines(source):
            if line.problem is not None or (line.model or model) is None:
                unread += 1
                continue
            pending.append(line)
            if len(pending) == _AT_ONCE:
                await _count(session, pending, model, output_tokens, gateway, token, prices,
                             totals)
                pending = []
        await _count(session, pending, model, output_tokens, gateway, token, prices, totals)
    return _report(totals, unread, gateway is None)


async def _count(session: aiohttp.ClientSession, lines: list[Line], model: str | None,
                 output_tokens: int | None, gateway: str | None, token: str | None,
                 prices: PriceBook, totals: dict[str, list[float]]) -> None:
    counted = await asyncio.gather(*(_input_tokens(session, line, line.model or model or "",
                                                   gateway, token) for line in lines))
    for line, prompt in zip(lines, counted, strict=True):
        name = line.model or model or ""
        answer = output_tokens if output_tokens is not None else _max_output(line.body)
        price = prices.price_of(name)
        row = totals[name]
        row[0] += 1
        row[1] += prompt
        row[2] += answer
        if price is not None:
            row[3] += cost_of(price, Tokens(prompt=prompt, candidates=answer))


async def _input_tokens(session: aiohttp.ClientSession, line: Line, model: str,
                        gateway: str | None, token: str | None) -> int:
    gemini = _as_gemini(line)
    if gateway is None:
        return estimate_tokens(gemini)
    headers = {"x-goog-api-key": token} if token else {}
    async with session.post(f"{gateway.rstrip('/')}/v1beta/models/{model}:countTokens",
                            data=orjson.dumps({"contents": gemini.get("contents", [])}),
                            headers={"Content-Type": "application/json", **headers}) as answer:
        data = orjson.loads(await answer.read()) if answer.status == 200 else {}
    found = data.get("totalTokens") if isinstance(data, dict) else None
    return found if isinstance(found, int) else estimate_tokens(gemini)


def _as_gemini(line: Line) -> dict[str, Any]:
    if line.kind == "gemini":
        return line.body
    parts = [{"text": m.get("content") if isinstance(m.get("content"), str)
              else orjson.dumps(m.get("content")).decode()}
             for m in line.body.get("messages") or [] if isinstance(m, dict)]
    return {"contents": [{"role": "user", "parts": parts}]}


def _max_output(body: dict[str, Any]) -> int:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    found = (config.get("maxOutputTokens") if isinstance(config, dict) else None) \
        or body.get("max_completion_tokens") or body.get("max_tokens")
    return found if isinstance(found, int) and found > 0 else DEFAULT_OUTPUT


def _report(totals: dict[str, list[float]], unread: int, offline: bool) -> str:
    rows = [f"{'model':<28}{'lines':>9}{'input tokens':>15}{'output tokens':>15}"
            f"{'interactive $':>15}{'Batch API $':>13}"]
    whole = [0.0, 0.0, 0.0, 0.0]
    for name, (lines, prompt, answer, cost) in sorted(totals.items()):
        rows.append(f"{name:<28}{lines:>9,.0f}{prompt:>15,.0f}{answer:>15,.0f}"
                    f"{cost:>15.4f}{cost * BATCH_SHARE:>13.4f}")
        whole = [w + v for w, v in zip(whole, (lines, prompt, answer, cost), strict=True)]
    rows.append(f"{'total':<28}{whole[0]:>9,.0f}{whole[1]:>15,.0f}{whole[2]:>15,.0f}"
                f"{whole[3]:>15.4f}{whole[3] * BATCH_SHARE:>13.4f}")
    how = "estimated locally (--offline)" if offline else "counted by countTokens"
    rows.append(f"input tokens {how}; output priced at each line's maxOutputTokens (or "
                f"--output-tokens, else {DEFAULT_OUTPUT})")
    if unread:
        rows.append(f"{unread:,} lines not counted (unreadable, or no model: give --model)")
    return "\n".join(rows)
