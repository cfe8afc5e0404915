"""What a request costs, in USD, from Google's usageMetadata and a price table.

Prices are USD per 1M tokens, paid tier, standard (not Batch) service, as published on
https://ai.google.dev/gemini-api/docs/pricing (figures as transcribed in gemgate's reference
notes, 2025-09 to 2026-09; check the live page — prices move). The operator overrides or adds
models under `prices:` in gemgate.yaml.

How Google bills, and so how the cost is computed:
- input = promptTokenCount − cachedContentTokenCount, plus toolUsePromptTokenCount, at the input
  price (the audio price for the AUDIO part of promptTokensDetails, where a model has one);
- cached input = cachedContentTokenCount at the context-caching price;
- output = candidatesTokenCount + thoughtsTokenCount: thinking is billed as output;
- models with a long-context tier charge every part at the higher prices when the prompt is
  longer than 200k tokens.
Requests on free-tier projects cost nothing (Google bills no free-tier use) unless
`ledger.price_free_tier` asks to count them at paid prices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger("gemgate.prices")

LONG_PROMPT = 200_000  # tokens; above this, long-context prices apply


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens. `*_long` apply to prompts over LONG_PROMPT tokens (None: same)."""

    input: float
    output: float
    cached: float = 0.0
    audio_input: float | None = None
    audio_output: float | None = None  # the native-audio (Live) models speak at their own price
    input_long: float | None = None
    output_long: float | None = None
    cached_long: float | None = None
    storage: float | None = None  # a context cache's tokens kept one hour (USD per 1M)


# Sources: ai.google.dev/gemini-api/docs/pricing via the transcription cited in
# ../shared/reference/gemini-api.md §7; context-caching prices are the page's "context caching"
# rows (10% of input for the 2.5 and 3.x families), and their storage per hour (2.5 Pro and
# Gemini 3 Pro $4.50, the Flash models $1.00). Keys are model ids or id prefixes.
PRICES: dict[str, Price] = {
    "gemini-2.5-pro": Price(1.25, 10.0, 0.125, input_long=2.50, output_long=15.0,
                            cached_long=0.25, storage=4.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40, 0.01, audio_input=0.30, storage=1.00),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.03, audio_input=1.00, storage=1.00),
    # The Live API's native-audio models: text in/out at the first two prices, audio (and
    # video) in and audio out at their own.
    "gemini-2.5-flash-native-audio": Price(0.50, 2.00, audio_input=3.00, audio_output=12.00),
    "gemini-live-2.5-flash": Price(0.50, 2.00, audio_input=3.00, audio_output=12.00),
    "gemini-2.0-flash-lite": Price(0.075, 0.30, 0.0),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025, audio_input=0.70, storage=1.00),
    "gemini-3.1-pro": Price(2.0, 12.0, 0.20, input_long=4.0, output_long=18.0, cached_long=0.40,
                            storage=4.50),
    "gemini-3.5-flash": Price(1.50, 9.0, 0.15),
    "gemini-embedding-001": Price(0.15, 0.0),
    "text-embedding-004": Price(0.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class Tokens:
    """The counts of one usageMetadata, named as the ledger stores them."""

    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0
    cached: int = 0
    tool_use: int = 0
    total: int = 0
    audio_prompt: int = 0
    audio_candidates: int = 0

    @classmethod
    def of(cls, usage: Mapping[str, Any] | None) -> Tokens:
        if not usage:
            return cls()

        def count(name: str) -> int:
            value = usage.get(name)
            return value if isinstance(value, int) and value > 0 else 0

        audio = _audio(usage.get("promptTokensDetails"))
        # Embeddings answer with no usageMetadata on most models; batchEmbed may carry
        # `totalTokenCount` only. Whatever is there is kept.
        return cls(count("promptTokenCount"), count("candidatesTokenCount"),
                   count("thoughtsTokenCount"), count("cachedContentTokenCount"),
                   count("toolUsePromptTokenCount"), count("totalTokenCount"), audio,
                   _audio(usage.get("candidatesTokensDetails")))


def _audio(details: Any) -> int:
    """The AUDIO (and VIDEO: priced alike) tokens of a usageMetadata's split by modality."""
    if not details:
        return 0
    return sum(d.get("tokenCount") or 0 for d in details
               if isinstance(d, dict) and d.get("modality") in ("AUDIO", "VIDEO"))


class PriceBook:
    """The built-in table with the operator's overrides; finds a model's price by the longest
    matching id prefix (so `gemini-2.5-flash-preview-09-2025` is priced as 2.5 Flash)."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**PRICES, **(overrides or {})}
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._unknown_warned: set[str] = set()

    @classmethod
    def configured(cls, prices: Mapping[str, Any]) -> PriceBook:
        """The built-in table with `prices:` from the settings (PriceConfig models)."""
        return cls({model: Price(**price.model_dump()) for model, price in prices.items()})

    def price_of(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        for name in self._by_length:
            if model.startswith(name):
                return self._prices[name]
        if model and model not in self._unknown_warned and len(self._unknown_warned) < 1000:
            self._unknown_warned.add(model)
            log.warning("no price for model %s: its requests are recorded at 0 USD; add it "
                        "under prices: in the configuration", model)
        return None

    def cost(self, model: str, tokens: Tokens) -> float:
        """USD for one request; 0 for an unpriced model."""
        price = self.price_of(model)
        return 0.0 if price is None else cost_of(price, tokens)


def cost_of(price: Price, tokens: Tokens) -> float:
    long = tokens.prompt > LONG_PROMPT
    if long:
        price = replace(price, input=_or(price.input_long, price.input),
                        output=_or(price.output_long, price.output),
                        cached=_or(price.cached_long, price.cached))
    cached = min(tokens.cached, tokens.prompt)
    audio = min(tokens.audio_prompt, tokens.prompt - cached)
    plain_input = tokens.prompt - cached - audio + tokens.tool_use
    audio_price = price.audio_input if price.audio_input is not None else price.input
    spoken = min(tokens.audio_candidates, tokens.candidates) if price.audio_output else 0
    micro = (plain_input * price.input + audio * audio_price + cached * price.cached
             + (tokens.candidates - spoken + tokens.thoughts) * price.output
             + spoken * (price.audio_output or 0.0))
    # Rounded to a billionth of a dollar: float noise below that is not money.
    return round(micro / 1_000_000, 9)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
