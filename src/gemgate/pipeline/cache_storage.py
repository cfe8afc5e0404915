"""Context caches' storage, metered: Google bills a cache's tokens for every hour it is kept,
for its whole TTL, whether or not it is read (`storage` in the price table: USD per 1M tokens
per hour). A create is charged from its createTime to its expireTime; a TTL update (PATCH) for
the hours it adds beyond what was already charged. Each cache's charged expiry is kept in the
shared records (Redis when shared), so an update on any replica charges only the extension; an
update whose cache this gateway has no record of is charged from now. Deleting a cache early
refunds nothing here (Google's page says the TTL is billed); a tenant that wants less should
set a shorter TTL."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.prices import PriceBook
from gemgate.state.records import Records

ACTION = "cachedContents.storage"
_ONE = re.compile(r"^cachedContents/[A-Za-z0-9_\-.]+$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class CacheStorage:
    """A Charge (pipeline/charges.py): `stored` tokens kept `hours`."""

    model: str
    stored: int
    hours: float
    action: str = ACTION
    once: str | None = None

    def tokens(self) -> dict[str, int]:
        return {"cachedContentTokenCount": self.stored, "totalTokenCount": self.stored}

    def cost(self, prices: PriceBook) -> float:
        price = prices.price_of(self.model)
        per_hour = price.storage if price is not None and price.storage is not None else 0.0
        return round(self.stored / 1_000_000 * per_hour * self.hours, 9)


class CacheStorageMeter:
    def __init__(self, records: Records, clock: Any = time.time) -> None:
        self.records, self.clock = records, clock

    async def seen(self, call: Call, answer: Answer) -> None:
        created = call.method == "POST" and call.path == "cachedContents"
        updated = call.method == "PATCH" and _ONE.match(call.path) is not None
        if not (created or updated) or answer.status != 200 or answer.stream is not None:
            return
        try:
            cache = orjson.loads(answer.body)
            name, model = str(cache["name"]), str(cache["model"]).removeprefix("models/")
            stored = int(cache["usageMetadata"]["totalTokenCount"])
            expires = _when(cache["expireTime"])
            start = _when(cache["createTime"]) if created else self.clock()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return
        if updated:
            kept = await self.records.get(name)
            if kept is not None:
                start = max(start, float(orjson.loads(kept)["expires"]))
        hours = max(0.0, expires - start) / 3600
        await self.records.put(name, orjson.dumps({"expires": max(expires, start)}),
                               max(60.0, expires - self.clock() + 86400))
        if hours > 0:
            call.charge = CacheStorage(model, stored, hours)


def _when(stamp: Any) -> float:
    text = _FRACTION.sub(r"\1", str(stamp)).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()
