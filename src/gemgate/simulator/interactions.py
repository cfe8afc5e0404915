"""The Interactions API's basics (`/v1beta/interactions`), as the google-genai SDK calls it:
create (synchronous, or `background: true` — then `in_progress` until first read), get,
delete, cancel; `previous_interaction_id` continues an interaction of the same project. Answers
are the simulator's deterministic text as one `model_output` step, with `usage`. Interactions
belong to the project whose key made them (another project's key gets 404)."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from gemgate.google_errors import error_body
from gemgate.simulator import errors, validate
from gemgate.simulator.core import Simulator
from gemgate.simulator.server import VERSIONS, api_key, json_response

Answerer = Callable[[str, Any], tuple[int, dict[str, Any]]]


@dataclass
class _Interaction:
    project: str
    shown: dict[str, Any]
    finished: dict[str, Any]  # what it shows once done (a background one is in progress first)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_of(given: Any) -> str:
    """The text of an interaction's input: a string, content blocks, or turns of them."""
    if isinstance(given, str):
        return given
    if isinstance(given, dict):
        return str(given.get("text") or _text_of(given.get("content") or ""))
    if isinstance(given, list):
        return " ".join(_text_of(item) for item in given)
    return ""


class InteractionsSurface:
    def __init__(self, sim: Simulator, answer: Answerer) -> None:
        self.sim, self.answer = sim, answer
        self._made: dict[str, _Interaction] = {}

    def routes(self) -> list[web.RouteDef]:
        base = f"/{{version:{VERSIONS}}}/interactions"
        return [web.post(base, self.create), web.get(base + "/{id}", self.get),
                web.delete(base + "/{id}", self.delete),
                web.post(base + "/{id}/cancel", self.cancel)]

    async def create(self, request: web.Request) -> web.Response:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return json_response(*(denial or errors.missing_key()))
        try:
            body = validate.parse_json_object(await request.read())
            model = str(body.get("model") or "").removeprefix("models/")
            if model not in self.sim.models:
                raise validate.Invalid(f"Model models/{model} is not found.", "model")
            text = _text_of(body.get("input"))
            if not text:
                raise validate.Invalid("input is required", "input")
            previous = body.get("previous_interaction_id")
            if previous is not None and self._owned(str(previous), caller.project.name) is None:
                raise validate.Invalid(f"interaction {previous} not found",
                                       "previous_interaction_id")
        except validate.Invalid as exc:
            self.sim.record(caller, "", "interactions.create", 400)
            return json_response(*errors.invalid_argument(exc.message, exc.field))
        status, answer = self.answer(model, {"contents": [{"role": "user",
                                                           "parts": [{"text": text}]}]})
        if status != 200:
            return json_response(status, orjson.dumps({"error": answer}))
        usage = answer["usageMetadata"]
        said = "".join(p.get("text", "") for p in answer["candidates"][0]["content"]["parts"])
        interaction_id = base64.b32encode(os.urandom(10)).decode().lower().rstrip("=")
        finished = {"id": interaction_id, "model": model, "status": "completed",
                    "created": _stamp(), "updated": _stamp(), "output_text": said,
                    "steps": [{"type": "model_output",
                               "content": [{"type": "text", "text": said}]}],
                    "usage": {"total_input_tokens": usage["promptTokenCount"],
                              "total_output_tokens": usage["candidatesTokenCount"],
                              "total_thought_tokens": usage.get("thoughtsTokenCount", 0),
                              "total_tokens": usage["totalTokenCount"]}}
        if previous is not None:
            finished["previous_interaction_id"] = previous
        shown = finished if not body.get("background") else {
            "id": interaction_id, "model": model, "status": "in_progress",
            "created": finished["created"], "updated": finished["updated"]}
        self._made[interaction_id] = _Interaction(caller.project.name, shown, finished)
        self.sim.record(caller, model, "interactions.create", 200)
        return json_response(200, orjson.dumps(shown))

    def _owned(self, interaction_id: str, project: str) -> _Interaction | None:
        found = self._made.get(interaction_id)
        return found if found is not None and found.project == project else None

    def _find(self, request: web.Request) -> tuple[_Interaction | None, web.Response | None]:
        caller, denial = self.sim.identify(api_key(request))
        if denial or caller is None:
            return None, json_response(*(denial or errors.missing_key()))
        found = self._owned(request.match_info["id"], caller.project.name)
        if found is None:
            return None, json_response(404, error_body(
                404, f"Interaction {request.match_info['id']} not found", "NOT_FOUND"))
        return found, None

    async def get(self, request: web.Request) -> web.Response:
        found, refusal = self._find(request)
        if refusal or found is None:
            return refusal or json_response(500, b"{}")
        if found.shown["status"] == "in_progress":  # a background run: done when next read
            found.shown = found.finished
        return json_response(200, orjson.dumps(found.shown))

    async def delete(self, request: web.Request) -> web.Response:
        found, refusal = self._find(request)
        if refusal or found is None:
            return refusal or json_response(500, b"{}")
        del self._made[request.match_info["id"]]
        return json_response(200, b"{}")

    async def cancel(self, request: web.Request) -> web.Response:
        found, refusal = self._find(request)
        if refusal or found is None:
            return refusal or json_response(500, b"{}")
        if found.shown["status"] == "in_progress":
            found.shown = {**found.shown, "status": "cancelled", "updated": _stamp()}
            found.finished = found.shown
        return json_response(200, orjson.dumps(found.shown))


