"""Error answers in Google's shape, each with a `hint` in the client's language.

Upstream errors keep Google's code, message, status and details; gemgate only masks any key in
them and adds the hint. gemgate's own refusals use the same shape, so SDKs parse them alike.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict

from gemgate.google_errors import STATUS_BY_CODE, error_dict, help_links, retry_info
from gemgate.pipeline.answer import Answer
from gemgate.pipeline.call import Call
from gemgate.problems import hint, language
from gemgate.secrets import scrub

JSON_TYPE = "application/json; charset=UTF-8"

_OWN_MESSAGES = {
    "ALL_PROJECTS_COOLING": "All upstream projects are waiting out Google quota limits.",
    "NO_QUOTA_ROOM": "No upstream project has quota room for this model before the deadline.",
    "BAD_PRIORITY": "Unknown priority.",
    "NO_HEALTHY_KEYS": "No upstream key is available: every key is disabled.",
    "UPSTREAM_TIMEOUT": "Google did not answer before the request's deadline.",
    "UPSTREAM_UNREACHABLE": "gemgate could not reach Google.",
    "TOKEN_MISSING": "No gemgate token was sent with the request.",
    "TOKEN_INVALID": "The gemgate token is not valid.",
    "GOOGLE_KEY_SENT": "A Google API key was sent where a gemgate token belongs.",
    "BODY_TOO_LARGE": "The request body is too large.",
    "BODY_UNREADABLE": "The request body could not be read.",
    "BODY_TIMEOUT": "The request body did not arrive in time.",
    "RESOURCE_NOT_FOUND": "Requested entity was not found.",
    "PATH_INVALID": "The request path has '.' or '..' segments, or encoded separators or "
                    "control characters.",
    "MALFORMED_JSON": "Invalid JSON payload received.",
    "UNKNOWN_ROUTE": "gemgate does not serve this path.",
    "ADMIN_ONLY": "The admin key is required.",
    "UPLOAD_UNKNOWN": "Unknown or expired upload session.",
    "GATEWAY_FAULT": "gemgate failed to handle the request.",
    "KEY_REVOKED": "This gemgate key has been revoked.",
    "KEY_EXPIRED": "This gemgate key has expired.",
    "KEY_DISABLED": "This gemgate key is disabled.",
    "IP_NOT_ALLOWED": "This gemgate key may not be used from this IP address.",
    "LEDGER_DISABLED": "The ledger is disabled.",
    "PROVIDER_UNSUPPORTED": "A provider's model answers only generateContent calls.",
    "PROVIDER_KEYS_RESTING": "Every key of the fallback provider is resting.",
    "PROVIDER_UNAVAILABLE": "gemgate could not reach the fallback provider.",
}


def lang_of(request: web.Request) -> str:
    """The language of hints for this client: Chinese when its Accept-Language prefers it."""
    return language(request.headers.get("Accept-Language"))


def new_request_id() -> str:
    return os.urandom(8).hex()


def json_reply(status: int, payload: dict[str, Any],
               headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer; every answer carries a request id, so a log line can be found from it."""
    headers = dict(headers or {})
    headers.setdefault("x-gemgate-request-id", new_request_id())
    return web.Response(status=status, body=orjson.dumps(payload), headers=headers,
                        content_type="application/json", charset="UTF-8")


def gateway_error(status: int, problem: str, lang: str, message: str | None = None,
                  details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    payload = error_dict(status, message or _OWN_MESSAGES.get(problem, problem),
                         STATUS_BY_CODE.get(status), details)
    payload["error"]["hint"] = hint(problem, lang)
    return payload


def upstream_error(body: bytes, problem: str | None, lang: str) -> dict[str, Any] | None:
    """Google's own error object with the hint added; None when the body is not one. (The relay
    has already masked the key that was used; anything else key-shaped is masked here.)"""
    try:
        data = orjson.loads(scrub(body))
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return None
    if problem:
        data["error"]["hint"] = hint(problem, lang)
    return data


def cooling_error(lang: str, retry_after_s: float, quota_error: bytes,
                  problem: str = "ALL_PROJECTS_COOLING") -> dict[str, Any]:
    """429 RESOURCE_EXHAUSTED with RetryInfo for the soonest recovery, and the QuotaFailure
    from Google's last 429 so the client still sees which quota ran out."""
    details: list[dict[str, Any]] = []
    original = upstream_error(quota_error, None, lang) if quota_error else None
    message = None
    if original is not None:
        message = original["error"].get("message")
        details = [d for d in original["error"].get("details") or ()
                   if not str(d.get("@type", "")).endswith("RetryInfo")]
    if not any(str(d.get("@type", "")).endswith(".Help") for d in details):
        details.append(help_links(("Gemini API rate limits",
                                   "https://ai.google.dev/gemini-api/docs/rate-limits")))
    details.append(retry_info(retry_after_s))
    return gateway_error(429, problem, lang, message, details)


def retry_after(seconds: float) -> str:
    """Retry-After in whole seconds, never rounded down to an earlier moment."""
    return str(max(1, int(seconds + 0.999)))


def answer_headers(call: Call, answer: Answer) -> CIMultiDict[str]:
    """Upstream's headers, plus which request this was and which model answered, and why."""
    headers = CIMultiDict(answer.headers)
    headers["x-gemgate-request-id"] = call.request_id
    if call.model:
        headers["x-gemgate-model"] = call.model
    if call.route_reason:
        headers["x-gemgate-route"] = call.route_reason
    return headers


def google_error_of(call: Call, answer: Answer) -> dict[str, Any]:
    """A failed answer in Google's shape: Google's (or a provider's) own error with the hint,
    or gemgate's — cooling refusals keep the QuotaFailure of Google's last 429."""
    problem = answer.problem
    payload = None
    if answer.body and answer.gateway_problem is None:
        payload = upstream_error(answer.body, problem, call.lang)
    if payload is None and problem in ("ALL_PROJECTS_COOLING", "NO_QUOTA_ROOM"):
        payload = cooling_error(call.lang, answer.retry_after_s or 0.0, answer.quota_error,
                                problem)
    if payload is None:
        payload = gateway_error(answer.status, problem or "UPSTREAM_INTERNAL", call.lang,
                                answer.message)
        if answer.cause:  # the fix is the cause's: replace the keys, enable the API, …
            payload["error"]["hint"] = hint(answer.cause, call.lang)
    return payload
