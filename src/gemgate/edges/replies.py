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

from gemgate.core.answer import Answer
from gemgate.core.call import Call
from gemgate.google_errors import STATUS_BY_CODE, error_dict, help_links, retry_info
from gemgate.problems import ProblemId, hint, language
from gemgate.problems import problem as problem_record
from gemgate.secrets import scrub

JSON_TYPE = "application/json; charset=UTF-8"



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


def gateway_error(status: int, problem: ProblemId, lang: str, message: str | None = None,
                  details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    payload = error_dict(status, message or problem_record(problem).message or problem,
                         STATUS_BY_CODE.get(status), details)
    payload["error"]["hint"] = hint(problem, lang)
    return payload


def upstream_error(body: bytes, problem: ProblemId | None, lang: str) -> dict[str, Any] | None:
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
                  problem: ProblemId = ProblemId.ALL_PROJECTS_COOLING) -> dict[str, Any]:
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


def gateway_headers(call: Call) -> dict[str, str]:
    """What gemgate says of every answer: which request, which model and why, the cache."""
    headers = {"x-gemgate-request-id": call.request_id}
    if call.model:
        headers["x-gemgate-model"] = call.model
    if call.route_reason:
        headers["x-gemgate-route"] = call.route_reason
    if call.cost_usd:  # a whole answer's, metered before it goes out (batch runs add it up)
        headers["x-gemgate-cost-usd"] = f"{call.cost_usd:.9f}"
    if call.trace is not None:
        headers["traceparent"] = call.trace["traceparent"]
    if call.cache is not None:
        headers["x-gemgate-cache"] = call.cache
        if call.cache in ("HIT", "SEMANTIC-HIT"):
            headers["Age"] = str(int(call.cache_age_s))
        if call.cache_similarity is not None:
            headers["x-gemgate-cache-similarity"] = f"{call.cache_similarity:.4f}"
    return headers


def answer_headers(call: Call, answer: Answer) -> CIMultiDict[str]:
    """Upstream's headers, plus gemgate's own (gateway_headers)."""
    headers = CIMultiDict(answer.headers)
    headers.update(gateway_headers(call))
    return headers


def google_error_of(call: Call, answer: Answer) -> dict[str, Any]:
    """A failed answer in Google's shape: Google's (or a provider's) own error with the hint,
    or gemgate's — cooling refusals keep the QuotaFailure of Google's last 429."""
    problem = answer.problem
    payload = None
    if answer.body and answer.gateway_problem is None:
        payload = upstream_error(answer.body, problem, call.lang)
    if payload is None and problem in (ProblemId.ALL_PROJECTS_COOLING, ProblemId.NO_QUOTA_ROOM):
        payload = cooling_error(call.lang, answer.retry_after_s or 0.0, answer.quota_error,
                                problem)
    if payload is None:
        payload = gateway_error(answer.status, problem or ProblemId.UPSTREAM_INTERNAL, call.lang,
                                answer.message)
        if answer.cause:  # the fix is the cause's: replace the keys, enable the API, …
            payload["error"]["hint"] = hint(answer.cause, call.lang)
    return payload
