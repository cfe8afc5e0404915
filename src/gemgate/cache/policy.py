"""What the cache does with one call: its key, whether to look up and whether to store, and
for how long — decided once, before the relay.

The key is the caller's scope (its tenant, or a virtual key's namespace, or `global`), the
model the call ended up with (after aliases and `auto`), and a digest of everything in the body
that can change the answer, in a canonical form (field names in one spelling, keys sorted).
A generate call and its streamed twin share a key, and so does an OpenAI chat request with the
Gemini request it is translated to: both surfaces reach the same entries.

Modes: `off`; `deterministic` (the default) stores only answers meant to repeat — temperature 0,
or a seed; `all`. Per request: `x-gemgate-cache: off | refresh | ttl=N`, or
`Cache-Control: no-store | no-cache | max-age=N`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.cache.store import CacheKey
from gemgate.config import CacheConfig
from gemgate.core.call import Call
from gemgate.upstream.affinity import referenced

ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
# The body's fields that can change the answer, each under both spellings Google accepts.
_FIELDS = {"contents": "contents", "systemInstruction": "systemInstruction",
           "system_instruction": "systemInstruction", "tools": "tools",
           "toolConfig": "toolConfig", "tool_config": "toolConfig",
           "generationConfig": "generationConfig", "generation_config": "generationConfig",
           "safetySettings": "safetySettings", "safety_settings": "safetySettings",
           "cachedContent": "cachedContent", "cached_content": "cachedContent"}
_TTL = re.compile(r"ttl=(\d+(?:\.\d+)?)")
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True, slots=True)
class Plan:
    key: CacheKey
    lookup: bool  # False: refresh (a new answer replaces the entry)
    store: bool
    ttl_s: float
    max_age_s: float | None  # a hit older than this is not served


def canonical(body: dict[str, Any]) -> bytes:
    """The answer-changing part of a Gemini request, in one spelling, keys sorted, numbers
    in one form (0.0 is 0: an OpenAI client's `temperature: 0` arrives as a float)."""
    picked = {_FIELDS[k]: _numbers(v) for k, v in body.items() if k in _FIELDS}
    return orjson.dumps(picked, option=orjson.OPT_SORT_KEYS)


def _numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def deterministic(body: dict[str, Any]) -> bool:
    config = body.get("generationConfig") or body.get("generation_config")
    if not isinstance(config, dict):
        return False
    return config.get("temperature") == 0 or config.get("seed") is not None


def scope_of(call: Call, config: CacheConfig) -> str:
    tenant = call.tenant
    key = tenant.key if tenant is not None else None
    namespace = key.spec.metadata.get("cache_namespace") if key is not None else None
    if isinstance(namespace, str) and namespace:
        return f"ns:{namespace}"
    if config.scope == "global":
        return "global"
    return tenant.id if tenant is not None else "anonymous"


def plan(call: Call, config: CacheConfig) -> Plan | None:
    """None: the cache stays out of this call (BYPASS when it could have been cached)."""
    if config.mode == "off" or call.action not in ACTIONS or call.method != "POST":
        return None
    body = call.parsed
    tenant = call.tenant
    if not isinstance(body, dict) or (tenant is not None and not tenant.cache):
        return None
    asked, control = call.asked_cache.lower(), call.cache_control.lower()
    if asked == "off" or "no-store" in control:
        return None
    if config.mode == "deterministic" and not deterministic(body):
        return None
    scope = scope_of(call, config)
    if scope == "global" and referenced(call):  # a file or cache not everyone may see
        return None
    try:
        form = canonical(body)
    except TypeError:  # a number beyond 64 bits: Google will judge the request, not the cache
        return None
    digest = hashlib.sha256(f"{call.version}\n".encode() + form).hexdigest()
    ttl = _TTL.search(asked)
    max_age = _MAX_AGE.search(control)
    ttl_s = (float(ttl.group(1)) if ttl else
             tenant.cache_ttl_s if tenant is not None and tenant.cache_ttl_s else
             config.ttl_by_model.get(call.model, config.ttl_s))
    refresh = asked == "refresh" or "no-cache" in control
    return Plan(CacheKey(scope, call.model, digest), lookup=not refresh, store=ttl_s > 0,
                ttl_s=ttl_s, max_age_s=float(max_age.group(1)) if max_age else None)
