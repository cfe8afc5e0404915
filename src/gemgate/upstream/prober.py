"""Brings disabled keys back by themselves: a cheap countTokens call with each disabled key, at
an interval; a key that answers normally again returns to rotation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from gemgate.core.call import Call
from gemgate.core.classify import Verdict, classify
from gemgate.problems import ProblemId
from gemgate.upstream.client import NETWORK_ERRORS, UpstreamClient
from gemgate.upstream.pool import KeyPool, KeyState, Lease, ProjectState

log = logging.getLogger("gemgate.pool")
_PROBE_BODY = orjson.dumps({"contents": [{"parts": [{"text": "ping"}]}]})


class Prober:
    def __init__(self, pool: KeyPool, client: UpstreamClient, model: str,
                 interval_s: float) -> None:
        self.pool, self.client = pool, client
        self.model, self.interval_s = model, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for key in self.pool.disabled_keys():
                await self.probe(key)

    async def probe(self, key: KeyState) -> bool:
        """True when the key works again (a 404 for the probe model still proves the key)."""
        verdict = await self.check(key)
        if verdict is not None and (verdict.ok or verdict.problem == ProblemId.MODEL_NOT_FOUND):
            self.pool.enable(key)
            log.info("key %s of project %s is healthy again and back in rotation",
                     key.masked, key.project.name)
            return True
        return False

    async def check_secret(self, secret: str, project: ProjectState | None) -> Verdict | None:
        """What Google says of a key not yet in the pool (through `project`'s proxy, if any)."""
        home = project or ProjectState("new", "free", None)
        return await self.check(KeyState(secret, ProjectState(home.name, home.tier,
                                                              home.proxy)))

    async def check(self, key: KeyState) -> Verdict | None:
        """Google's verdict on one cheap call with the key; None when the network said
        nothing about it (a timeout, a refused connection)."""
        call = Call(request_id="probe", method="POST", version="v1beta",
                    path=f"models/{self.model}:countTokens", query="",
                    headers={"content-type": "application/json"}, body=_PROBE_BODY)
        call.deadline = call.started + 15
        try:
            async with asyncio.timeout(15):
                upstream = await self.client.send(call, Lease(key))
                body = await upstream.read()
                upstream.release()
        except (TimeoutError, *NETWORK_ERRORS):
            return None  # the network says nothing about the key
        return classify(upstream.status, body)
