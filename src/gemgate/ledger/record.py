"""One ledger record: what a client request asked, what answered it, what it used and cost."""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter

from gemgate.prices import Tokens


@dataclass(frozen=True, slots=True)
class Record:
    ts: float
    request_id: str
    tenant: str
    vkey_id: str | None
    provider: str
    project: str | None
    key_mask: str | None
    model_asked: str | None
    model_used: str | None
    action: str | None
    status: int
    problem: str | None
    prompt_tokens: int
    candidates_tokens: int
    thoughts_tokens: int
    cached_tokens: int
    tool_tokens: int
    total_tokens: int
    cost_usd: float
    latency_ms: float
    stream: bool
    cancelled: bool
    attempts: int
    attempt_log: str | None  # "project/status/ms" per upstream attempt, `;`-separated
    priority: str | None
    client_ip: str | None
    cache: str | None = None  # HIT, SEMANTIC-HIT, MISS, REFRESH, BYPASS; None: not cacheable
    saved_usd: float = 0.0  # a cache hit: what the answer cost when it was made upstream
    modalities: str | None = None  # "in TEXT 12 AUDIO 40; out AUDIO 40"; None: all text
    guarded: str | None = None  # "PHONE 2 restore; deny:secrets log"; None: nothing found

    @property
    def hit(self) -> bool:
        return self.cache in ("HIT", "SEMANTIC-HIT")

    @property
    def failed(self) -> bool:
        return self.status >= 400 and not self.cancelled

    def row(self) -> tuple[object, ...]:
        return _ROW(self)

    @staticmethod
    def with_tokens(tokens: Tokens) -> dict[str, int]:
        return {"prompt_tokens": tokens.prompt, "candidates_tokens": tokens.candidates,
                "thoughts_tokens": tokens.thoughts, "cached_tokens": tokens.cached,
                "tool_tokens": tokens.tool_use, "total_tokens": tokens.total}


COLUMNS = tuple(f.name for f in fields(Record))
_ROW = attrgetter(*COLUMNS)
