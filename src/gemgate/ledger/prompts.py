"""Prompts kept for the Requests page — only when the operator turns it on
(`ledger.keep_prompts`), for `ledger.prompt_retention_h` hours, at most 64 KiB each.

They are records with a lifetime (state/records.py: in Redis when the state is shared, so any
replica's console finds them; in memory, the newest 10,000, otherwise) — never in the ledger's
database, whose rows live for a year. Off by default: a gateway that keeps no prompts cannot
leak them."""

from __future__ import annotations

import asyncio
from typing import Any

from gemgate.core.call import Call
from gemgate.core.events import Events, Finished
from gemgate.secrets import SECRET_SHAPES, mask_key
from gemgate.state.records import Records

MAX_BYTES = 64 * 1024


class PromptKeeper:
    def __init__(self, records: Records, retention_h: float, events: Events) -> None:
        self.records, self.ttl_s = records, retention_h * 3600
        self._pending: set[asyncio.Future[None]] = set()
        events.subscribe(self._on_finished, (Finished,))

    def _on_finished(self, call: Call | None, event: Any) -> None:
        if call is None or not call.body:
            return
        # What the guardrails found never rests here, even what their policy only logs.
        safe = call.guarded.safe_body if call.guarded is not None else None
        text = (safe or call.body)[:MAX_BYTES].decode("utf-8", "replace")
        text = SECRET_SHAPES.sub(lambda m: mask_key(m.group()), text)  # never a key, even here
        task = asyncio.ensure_future(self.records.put(call.request_id, text.encode(),
                                                      self.ttl_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def find(self, request_id: str) -> str | None:
        found = await self.records.get(request_id)
        return found.decode() if found is not None else None
