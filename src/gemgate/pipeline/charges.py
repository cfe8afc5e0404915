"""What Google bills that is not a call's own usageMetadata: a batch job's results (at the
batch price, pipeline/batches.py) and a context cache's storage (pipeline/cache_storage.py).

A stage that finds one sets `call.charge`; the meter then records it on that call's ledger row
— its tokens, its cost, its action and model — and charges the key's budgets. A charge that
must be counted once whatever reads it (a batch's results) is claimed in the store first."""

from __future__ import annotations

from typing import Protocol

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.prices import PriceBook


class Charge(Protocol):
    action: str  # what the ledger row says it was: batchResults, cachedContents.storage
    once: str | None  # a name claimed in the store before charging; None: always charge

    @property
    def model(self) -> str: ...

    def tokens(self) -> dict[str, int]:
        """usageMetadata-shaped counts for the ledger row."""

    def cost(self, prices: PriceBook) -> float: ...


class AnswerWatcher(Protocol):
    """Looks at a successful resource call's whole answer (the pipeline calls each in turn);
    sets `call.charge` when it finds something billed, and notes who owns what it made."""

    async def seen(self, call: Call, answer: Answer) -> None: ...
