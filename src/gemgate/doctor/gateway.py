"""Step 5, the gateway itself: does it answer, does it accept the token, and does a one-token
request make the round trip."""

from __future__ import annotations

import time

import aiohttp
import orjson

from gemgate.problems import ProblemId

from .findings import Finding
from .upstream import NETWORK_ERRORS


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _error(raw: bytes) -> tuple[str, str]:
    try:
        error = orjson.loads(raw).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return raw[:200].decode(errors="replace"), ""
    return str(error.get("message", "")), str(error.get("hint", ""))


async def check_gateway(http: aiohttp.ClientSession, url: str, token: str | None, model: str,
                        timeout: float) -> list[Finding]:
    url = url.rstrip("/")
    limit = aiohttp.ClientTimeout(total=timeout)
    started = time.perf_counter()
    try:
        async with http.get(f"{url}/healthz", timeout=limit) as answer:
            await answer.read()
    except NETWORK_ERRORS as exc:
        return [Finding("gateway", "reachable", url, "fail", str(exc) or type(exc).__name__,
                        ProblemId.GATEWAY_UNREACHABLE, _ms(started))]
    found = [Finding("gateway", "reachable", url, "ok", f"HTTP {answer.status}",
                     ms=_ms(started))]
    headers = {"x-goog-api-key": token} if token else {}
    started = time.perf_counter()
    async with http.get(f"{url}/v1beta/models", headers=headers, timeout=limit) as answer:
        status, raw = answer.status, await answer.read()
    if status == 401:
        message, _ = _error(raw)
        problem = ProblemId.TOKEN_INVALID if token else ProblemId.TOKEN_MISSING
        return [*found, Finding("gateway", "token", url, "fail", message, problem,
                                _ms(started))]
    found.append(Finding("gateway", "token", url, "ok", "accepted", ms=_ms(started)))
    body = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}],
            "generationConfig": {"maxOutputTokens": 1}}
    started = time.perf_counter()
    async with http.post(f"{url}/v1beta/models/{model}:generateContent",
                         data=orjson.dumps(body), timeout=limit,
                         headers={**headers, "Content-Type": "application/json"}) as answer:
        status, raw = answer.status, await answer.read()
    if status != 200:
        message, hint = _error(raw)
        detail = f"HTTP {status}: {message}" + (f" — gateway's hint: {hint}" if hint else "")
        return [*found, Finding("gateway", "round trip", url, "fail", detail,
                                ProblemId.GATEWAY_ROUND_TRIP_FAILED, _ms(started))]
    found.append(Finding("gateway", "round trip", url, "ok", f"{model} answered",
                         ms=_ms(started)))
    return found
