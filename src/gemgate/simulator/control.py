"""The control surface under the reserved path `/_sim/…`: change faults, latency and project
states while the simulator runs, and read what it received."""

from __future__ import annotations

from typing import Any, get_args

import orjson
from aiohttp import web
from pydantic import ValidationError

from gemgate.simulator.config import FaultRule, ProjectState, SimProject
from gemgate.simulator.core import Simulator

_TUNABLE = ("latency_ms", "ttfb_ms", "chunk_delay_ms", "seed", "minute_seconds", "day_seconds",
            "any_key", "batch_seconds", "batch_expire_seconds", "live_goaway_seconds")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _problem(message: str, status: int = 400) -> web.Response:
    return _json({"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}},
                 status)


class ControlSurface:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sim/stats", self.stats),
            web.get("/_sim/requests", self.requests),
            web.post("/_sim/reset", self.reset),
            web.get("/_sim/faults", self.faults),
            web.post("/_sim/faults", self.add_faults),
            web.delete("/_sim/faults", self.clear_faults),
            web.get("/_sim/config", self.config),
            web.patch("/_sim/config", self.tune),
            web.post("/_sim/projects", self.add_project),
            web.post("/_sim/projects/{name}/state", self.project_state),
            web.post("/_sim/keys/{key}/revoke", self.key_state),
            web.post("/_sim/keys/{key}/restore", self.key_state),
        ]

    def _denied(self, request: web.Request) -> web.Response | None:
        token = self.sim.config.control_token
        if token and request.headers.get("x-sim-control-token") != token:
            return _problem("control token required", 403)
        return None

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        return orjson.loads(raw) if raw.strip() else {}

    async def stats(self, request: web.Request) -> web.Response:
        return self._denied(request) or _json(self.sim.stats())

    async def requests(self, request: web.Request) -> web.Response:
        """The JSON bodies Google received, newest last (`?limit=N`, 20 by default)."""
        if denied := self._denied(request):
            return denied
        limit = int(request.query.get("limit", "20")) if request.query.get(
            "limit", "20").isdigit() else 20
        return _json({"requests": list(self.sim.received)[-limit:]})

    async def reset(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        self.sim.reset()
        return _json({"reset": True})

    async def faults(self, request: web.Request) -> web.Response:
        return self._denied(request) or _json(self.sim.faults.rules())

    async def add_faults(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        try:
            body = await self._body(request)
            rules = [FaultRule.model_validate(r) for r in (body if isinstance(body, list)
                                                           else [body])]
        except (orjson.JSONDecodeError, ValidationError) as exc:
            return _problem(f"invalid fault rule: {exc}")
        for rule in rules:
            self.sim.add_fault(rule)
        return _json(self.sim.faults.rules())

    async def clear_faults(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        self.sim.clear_faults()
        return _json([])

    async def config(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        shown = self.sim.config.model_dump(exclude={"control_token"})
        return _json(shown)

    async def tune(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        try:
            body = await self._body(request)
            unknown = set(body) - set(_TUNABLE)
            if unknown:
                return _problem(f"not tunable at run time: {sorted(unknown)}")
            tuned = self.sim.config.model_validate({**self.sim.config.model_dump(), **body})
        except (orjson.JSONDecodeError, ValidationError, TypeError) as exc:
            return _problem(f"invalid settings: {exc}")
        for name in body:
            setattr(self.sim.config, name, getattr(tuned, name))
        if "seed" in body:
            self.sim.faults.reseed(tuned.seed)
        return _json({name: getattr(self.sim.config, name) for name in _TUNABLE})

    async def add_project(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        try:
            self.sim.add_project(SimProject.model_validate(await self._body(request)))
        except (orjson.JSONDecodeError, ValidationError, ValueError) as exc:
            return _problem(f"invalid project: {exc}")
        return _json({"projects": [p.name for p in self.sim.projects()]})

    async def project_state(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        name = request.match_info["name"]
        body = await self._body(request)
        state = body.get("state") if isinstance(body, dict) else None
        if state not in get_args(ProjectState):
            return _problem(f"state must be one of {list(get_args(ProjectState))}")
        try:
            self.sim.set_project_state(name, state)  # type: ignore[arg-type]  # checked above
        except KeyError:
            return _problem(f"no project {name}", 404)
        return _json({"project": name, "state": state})

    async def key_state(self, request: web.Request) -> web.Response:
        """Revokes a key (Google then calls it invalid) or restores it."""
        if denied := self._denied(request):
            return denied
        key = request.match_info["key"]
        revoked = request.path.endswith("/revoke")
        try:
            self.sim.revoke_key(key, revoked)
        except KeyError:
            return _problem("no such key", 404)
        return _json({"revoked": revoked})
