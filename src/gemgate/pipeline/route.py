"""The route stage: aliases and `model: auto` become a real model, and the request's priority
and fallback rights are settled."""

from __future__ import annotations

import re

from gemgate.config import Settings
from gemgate.core.call import Call
from gemgate.pipeline import auto
from gemgate.problems import ProblemId
from gemgate.scheduling.scheduler import PRIORITIES

_OFF = {"off", "none", "false", "0", "no"}
# Google's model ids: letters, digits, '.', '-', '_' (gemini-2.5-flash, gemma-3-27b-it). Checked
# before rights are judged: a name is a path upstream, so `flash/../pro` would pass a key's
# `gemini-2.5-flash*` right and reach Google as another model, billed at the wrong price.
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
# After `<provider>/`: a provider's own ids may hold more segments and ':' (org/model:free).
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._\-:]{0,127}"
_PROVIDER_MODEL = re.compile(rf"{_SEGMENT}(/{_SEGMENT})*")


class Router:
    def __init__(self, settings: Settings) -> None:
        self.aliases = settings.aliases
        self.auto = settings.auto
        self.fallbacks = settings.fallback
        self.providers = frozenset(p.name for p in settings.providers)

    def valid_model(self, model: str) -> bool:
        """A Gemini model id, an alias, or `<provider>/<model>` of a configured provider."""
        if _MODEL_ID.fullmatch(model) or model in self.aliases:
            return True
        provider, slash, rest = model.partition("/")
        return bool(slash) and provider in self.providers and \
            _PROVIDER_MODEL.fullmatch(rest) is not None

    def route(self, call: Call) -> ProblemId | None:
        """Settles model, priority and fallback; the id of a problem when the request is bad."""
        if call.model and not self.valid_model(call.model):
            call.refused_model, call.model = call.model, ""  # never echoed in a header
            return ProblemId.MODEL_NAME_INVALID
        asked = call.asked_priority
        if asked is not None:
            if asked.strip().lower() not in PRIORITIES:
                return ProblemId.BAD_PRIORITY
            call.priority = asked.strip().lower()
        elif call.tenant is not None:
            call.priority = call.tenant.priority
        tenant_allows = call.tenant.fallback if call.tenant is not None else True
        header = call.asked_fallback.strip().lower()
        call.fallback = tenant_allows and header not in _OFF
        call.model_asked = call.model
        if not call.model:
            return None
        if call.model in self.aliases:
            target = self.aliases[call.model]
            call.route_reason = f"alias: {call.model} -> {target}"
            call.use_model(target)
        elif call.model == "auto" and isinstance(call.parsed, dict):
            model, call.route_reason = auto.choose(call.parsed, self.auto)
            call.use_model(model)
        return None

    def chain(self, call: Call) -> list[str]:
        """The model and, when allowed, the models to fall back to, in order (only those the
        caller's key may use)."""
        if not call.fallback or call.action not in ("generateContent", "streamGenerateContent"):
            return [call.model]
        tenant = call.tenant
        return [call.model, *[m for m in self.fallbacks.get(call.model, [])
                              if m != call.model and (tenant is None or tenant.allows_model(m))]]
