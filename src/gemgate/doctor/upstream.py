"""Steps 3 and 4, the key and the model: a free models.list call tells whether Google accepts
the key (and why not), then a one-token generateContent on the chosen model tells about quota,
overload and the model's name. Google's answers are read with the gateway's own classifier."""

from __future__ import annotations

import difflib
import time
from typing import Any

import aiohttp
import orjson

from gemgate.core.classify import classify, error_of
from gemgate.google_errors import find_detail
from gemgate.problems import ProblemId
from gemgate.secrets import scrub

from .findings import Finding

_RESTRICTIONS = {"API_KEY_IP_ADDRESS_BLOCKED": ProblemId.KEY_IP_RESTRICTED,
                 "API_KEY_HTTP_REFERRER_BLOCKED": ProblemId.KEY_REFERRER_RESTRICTED,
                 "API_KEY_SERVICE_BLOCKED": ProblemId.KEY_API_RESTRICTED}
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _problem(status: int, body: bytes) -> tuple[ProblemId, str]:
    """gemgate's problem id for Google's refusal, and the facts that help fix it."""
    verdict = classify(status, body)
    error = error_of(body)
    problem = verdict.problem or ProblemId.UPSTREAM_INTERNAL
    info = find_detail(error, "ErrorInfo") or {}
    metadata = info.get("metadata") or {}
    if problem == ProblemId.API_KEY_RESTRICTED:
        problem = _RESTRICTIONS.get(str(info.get("reason")), problem)
    detail = str(error.get("message") or f"HTTP {status}")
    if problem == ProblemId.SERVICE_DISABLED:
        number = str(metadata.get("consumer", "")).removeprefix("projects/")
        link = metadata.get("activationUrl", "")
        detail = f"project number {number}; enable it at {link}" if link else detail
    elif problem == ProblemId.QUOTA_EXHAUSTED and verdict.violation:
        metric = verdict.violation.get("quotaMetric") or verdict.violation.get("quotaId")
        delay = f"; retry in {verdict.cooldown_s:.0f} s" if verdict.cooldown_s else ""
        detail = f"quota {metric} exhausted{delay}"
    return problem, detail


async def check_key(http: aiohttp.ClientSession, base_url: str, key: str, subject: str,
                    timeout: float) -> tuple[Finding, list[str]]:
    """Google's verdict on the key, and the models it may use (for "did you mean")."""
    started = time.perf_counter()
    try:
        async with http.get(f"{base_url}/v1beta/models", params={"pageSize": "1000"},
                            headers={"x-goog-api-key": key},
                            timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            status, body = answer.status, scrub(await answer.read(), key)
    except NETWORK_ERRORS as exc:
        return Finding("key", "key", subject, "fail", str(exc) or type(exc).__name__,
                       ProblemId.UPSTREAM_UNREACHABLE, _ms(started)), []
    if status != 200:
        problem, detail = _problem(status, body)
        return Finding("key", "key", subject, "fail", detail, problem, _ms(started)), []
    models = [str(m.get("name", "")).removeprefix("models/")
              for m in orjson.loads(body).get("models") or () if isinstance(m, dict)]
    return Finding("key", "key", subject, "ok", f"accepted; {len(models)} models visible",
                   ms=_ms(started)), models


def did_you_mean(model: str, models: list[str]) -> str:
    close = difflib.get_close_matches(model, models, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else "see GET /v1beta/models"


async def check_generate(http: aiohttp.ClientSession, base_url: str, key: str, model: str,
                         models: list[str], subject: str, timeout: float) -> Finding:
    """A one-token answer from `model`; quota, overload and unknown models explained."""
    if models and model not in models:
        return Finding("model", model, subject, "fail",
                       f"{model} is not a model this key can use; {did_you_mean(model, models)}",
                       ProblemId.MODEL_NOT_FOUND)
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}],
                            "generationConfig": {"maxOutputTokens": 1}}
    started = time.perf_counter()
    try:
        async with http.post(f"{base_url}/v1beta/models/{model}:generateContent",
                             data=orjson.dumps(body),
                             headers={"x-goog-api-key": key, "Content-Type": "application/json"},
                             timeout=aiohttp.ClientTimeout(total=timeout)) as answer:
            status, raw = answer.status, scrub(await answer.read(), key)
    except NETWORK_ERRORS as exc:
        return Finding("model", model, subject, "fail", str(exc) or type(exc).__name__,
                       ProblemId.UPSTREAM_UNREACHABLE, _ms(started))
    if status == 200:
        return Finding("model", model, subject, "ok", "answered a 1-token request",
                       ms=_ms(started))
    problem, detail = _problem(status, raw)
    if problem == ProblemId.MODEL_NOT_FOUND:
        detail = f"{detail} — {did_you_mean(model, models)}"
    return Finding("model", model, subject, "fail", detail, problem, _ms(started))
