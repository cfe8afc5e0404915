"""Budget alerts: a warning in the log, and a JSON POST to the operator's webhook when set.

Sending never blocks a request: each alert is posted from its own task, with a short timeout,
and a webhook that fails is logged, not retried forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

log = logging.getLogger("gemgate.budgets")
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class Alerts:
    def __init__(self, webhook_url: str | None) -> None:
        self.webhook_url = webhook_url
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, event: dict[str, Any]) -> None:
        log.warning("%s: key %s (%s) has spent %s USD of its %s budget of %s USD (%s%%)",
                    event["event"], event["key_name"], event["key_id"], event["spent_usd"],
                    event["period"], event["budget_usd"], event["percent"],
                    extra={"fields": event})
        if self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._post(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        try:
            async with self._session.post(self.webhook_url, data=orjson.dumps(event),
                                          headers={"Content-Type": "application/json"}) as reply:
                if reply.status >= 300:
                    log.error("budget webhook answered %d", reply.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.error("budget webhook failed: %s", exc)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._session is not None:
            await self._session.close()
