"""The Interactions API (`/v1beta/interactions`) through gemgate: each interaction its
creator's, and its usage metered.

An interaction is a stored resource named by a bare id: gemgate notes `interactions/ID` as
its creator's (so another tenant's get, delete, cancel — or `previous_interaction_id` pointing
at it — finds nothing, and the calls go to the project that holds it), and records its usage
once it shows `completed` with `usage` — in the create's answer, or on the first read of a
background interaction — claimed once in the store, at the model's price. Streamed
interactions (`stream: true`) are relayed but not metered (their usage arrives in events this
version does not read)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.prices import PriceBook, Tokens
from gemgate.upstream.affinity import ResourceOwners

ACTION = "interactions"
_ONE = re.compile(r"^interactions/([A-Za-z0-9_\-.]+)$")
# Interactions usage → usageMetadata names (what Tokens and the ledger read).
_NAMES = {"total_input_tokens": "promptTokenCount", "total_output_tokens": "candidatesTokenCount",
          "total_thought_tokens": "thoughtsTokenCount",
          "total_cached_tokens": "cachedContentTokenCount",
          "total_tool_use_tokens": "toolUsePromptTokenCount", "total_tokens": "totalTokenCount"}


@dataclass(frozen=True, slots=True)
class InteractionUsage:
    """A Charge (pipeline/charges.py): a completed interaction's usage, once."""

    once: str
    model: str
    usage: dict[str, int]
    action: str = ACTION

    def tokens(self) -> dict[str, int]:
        return self.usage

    def cost(self, prices: PriceBook) -> float:
        return prices.cost(self.model, Tokens.of(self.usage))


class InteractionMeter:
    def __init__(self, owners: ResourceOwners) -> None:
        self.owners = owners

    async def seen(self, call: Call, answer: Answer) -> None:
        if not call.path.startswith("interactions"):
            return
        created = call.method == "POST" and call.path == "interactions"
        read = call.method == "GET" and _ONE.match(call.path) is not None
        if not (created or read) or answer.status != 200 or answer.stream is not None \
                or call.tenant is None:
            return
        try:
            shown = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(shown, dict) or not isinstance(shown.get("id"), str):
            return
        name = f"interactions/{shown['id']}"
        if created and call.attempts:
            await self.owners.adopt(name, call.tenant.id, call.attempts[-1].project)
        usage = shown.get("usage")
        if shown.get("status") == "completed" and isinstance(usage, dict):
            model = str(shown.get("model") or "").removeprefix("models/")
            call.charge = InteractionUsage(name, model, _usage_metadata(usage))


def _usage_metadata(usage: dict[str, Any]) -> dict[str, int]:
    return {_NAMES[k]: v for k, v in usage.items() if k in _NAMES and isinstance(v, int)}
