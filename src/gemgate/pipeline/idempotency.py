"""Idempotent requests: a call carrying `Idempotency-Key` is answered once, however often it is
sent — a client that lost the answer (a timeout, a crash, `kill -9` of a batch run) sends it
again and gets the same answer, without a second upstream call or a second charge.

Per tenant and key, a record holds the request's digest and, once answered, the answer (a whole
answer below 500; a stream, a 5xx or a refusal leaves no record, so a retry is a new try).
A repeat while the first is still in flight waits for it. The same key with another body is
refused (409). Records live `ttl_s` (24 h) in the shared records (Redis when the state is
shared, so any replica replays). A replay is recorded in the ledger at no cost, cache `REPLAY`.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.problems import ProblemId
from gemgate.state.records import Records

REPLAYED = "x-gemgate-idempotent-replay"
_KEEP_HEADERS = ("content-type",)
_WAIT_STEP_S = 0.05


class Idempotency:
    def __init__(self, records: Records, ttl_s: float = 86400.0) -> None:
        self.records, self.ttl_s = records, ttl_s

    async def begin(self, call: Call) -> Answer | ProblemId | None:
        """None: go on (and `finish` keeps the answer); else the answer to give (a replay) or
        the problem to refuse with (the key reused for another request, or its first call
        still in flight at the deadline)."""
        given = call.idempotency_key
        if given is None or call.tenant is None or call.method != "POST" or call.stream:
            return None
        given = given.strip()
        if not given or len(given) > 255:
            return ProblemId.IDEMPOTENCY_KEY_INVALID
        name = f"{call.tenant.id}:{hashlib.sha256(given.encode()).hexdigest()}"
        digest = hashlib.sha256(call.path.encode() + b"\n" + call.body).hexdigest()
        busy = orjson.dumps({"digest": digest})
        while True:
            if await self.records.put_new(name, busy, max(1.0, call.remaining())):
                call.idempotency = name
                return None
            kept = await self.records.get(name)
            if kept is None:
                continue  # gone between the two calls: try to claim it again
            record: dict[str, Any] = orjson.loads(kept)
            if record.get("digest") != digest:
                return ProblemId.IDEMPOTENCY_KEY_REUSED
            if "status" in record:
                call.cache = "REPLAY"
                return Answer(record["status"], headers=[*map(tuple, record["headers"]),
                                                         (REPLAYED, "true")],
                              body=record["body"].encode("latin-1"))
            if call.remaining() <= 0:
                return ProblemId.IDEMPOTENCY_IN_FLIGHT
            await asyncio.sleep(min(_WAIT_STEP_S, call.remaining()))

    async def finish(self, call: Call, answer: Answer) -> None:
        name = call.idempotency
        if name is None:
            return
        if answer.stream is not None or answer.status >= 500:
            await self.records.delete(name)  # nothing to replay: the next try is a new one
            return
        digest = hashlib.sha256(call.path.encode() + b"\n" + call.body).hexdigest()
        kept = {"digest": digest, "status": answer.status,
                "headers": [(k, v) for k, v in answer.headers if k.lower() in _KEEP_HEADERS],
                "body": answer.body.decode("latin-1")}
        await self.records.put(name, orjson.dumps(kept), self.ttl_s)
