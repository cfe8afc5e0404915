"""Key and project health through Redis: a change one replica makes (a key found invalid, a
project cooling, a key ejected as an outlier, a provider key resting, a limit learnt from a 429)
is published on a channel every replica listens to — applied elsewhere within milliseconds —
and kept in a hash, so a replica that starts later, or that lost Redis for a while, catches up
on what it missed (a key disabled while it was away is still disabled when it returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict, replace
from typing import Any

import orjson

from gemgate.core.events import LimitLearnt, PoolChanged, ProviderRested, Shared
from gemgate.problems import ProblemId
from gemgate.state.health import Apply
from gemgate.state.redis.link import Down, Link, as_bytes

log = logging.getLogger("gemgate.state")
_KINDS: dict[str, type] = {"pool": PoolChanged, "provider": ProviderRested, "limit": LimitLearnt}
_NAMES = {kind: name for name, kind in _KINDS.items()}
_KEEP_S = 7 * 86400.0  # how long a lasting change (disabled, a learnt limit) stays known


def encode(change: Shared, sender: str) -> bytes:
    return orjson.dumps({"kind": _NAMES[type(change)], "from": sender, "at": time.time(),
                         "change": asdict(change)})


def decode(raw: bytes) -> tuple[Shared, str, float]:
    message = orjson.loads(raw)
    fields: dict[str, Any] = message["change"]
    if message["kind"] == "pool" and fields.get("problem"):
        fields["problem"] = ProblemId(fields["problem"])
    change: Shared = _KINDS[message["kind"]](**fields)
    return change, message["from"], float(message["at"])


def _slot(change: Shared) -> str:
    """Where the latest change of one thing is kept (a later one replaces it)."""
    if isinstance(change, PoolChanged):
        return f"pool:{change.project}:{change.key_id or '*'}:{change.model or '*'}"
    if isinstance(change, ProviderRested):
        return f"provider:{change.provider}:{change.key_id}"
    return f"limit:{change.project}:{change.model}"


def _lifetime(change: Shared) -> float:
    if isinstance(change, PoolChanged) and change.state in ("cooling", "ejected"):
        return change.seconds
    if isinstance(change, ProviderRested):
        return change.seconds
    return _KEEP_S


class RedisHealth:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.channel, self.kept = link.key("health"), link.key("health", "kept")

    async def publish(self, change: Shared) -> None:
        raw = encode(change, self.link.replica)
        pipe = self.link.client.pipeline(transaction=False)
        pipe.publish(self.channel, raw)
        pipe.hset(self.kept, _slot(change), raw)
        # If Redis is away, this replica's pool keeps the change and the others find the key
        # out themselves; the kept hash is brought up to date by the next change.
        with contextlib.suppress(Down):
            await self.link.call(pipe.execute())

    async def listen(self, apply: Apply) -> None:
        """Catches up on kept changes, then applies others' changes as they come; after
        losing Redis, catches up again."""
        while True:
            try:
                pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                await self._catch_up(apply)
                async for message in pubsub.listen():
                    change, sender, _ = decode(as_bytes(message["data"]))
                    if sender != self.link.replica:
                        apply(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("health channel lost: %s", exc)
                await asyncio.sleep(1.0)

    async def _catch_up(self, apply: Apply) -> None:
        kept = await self.link.client.hgetall(self.kept)
        now = time.time()
        stale = []
        for slot, raw in kept.items():
            change, sender, at = decode(as_bytes(raw))
            left = at + _lifetime(change) - now
            if left <= 0:
                stale.append(slot)
                continue
            if sender == self.link.replica:
                continue
            if isinstance(change, (PoolChanged, ProviderRested)) and change.seconds:
                change = replace(change, seconds=left)  # what is left of a cooldown or rest
            apply(change)
        if stale:
            await self.link.client.hdel(self.kept, *stale)
