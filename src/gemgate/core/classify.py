"""What an upstream answer means for the key, the project and the request.

Only a key's own faults disable it; a 429 cools the whole project (quota is per project); server
errors and network failures change nothing but are worth another try. Peers that treat every
failure alike disable healthy keys and never bring them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gemgate.google_errors import find_detail, parse_duration
from gemgate.problems import ProblemId

Action = Literal["none", "cool_project", "disable_key", "disable_project"]

_RESTRICTED_REASONS = {
    "API_KEY_SERVICE_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED",
    "API_KEY_ANDROID_APP_BLOCKED", "API_KEY_IOS_APP_BLOCKED",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    problem: ProblemId | None  # None for a success
    action: Action = "none"
    retry: bool = False  # another attempt may succeed
    elsewhere: bool = False  # retry at once on another key/project, without backoff
    cooldown_s: float | None = None  # for "cool_project": RetryInfo's delay when Google gave one
    reason: str = ""  # what Google said, for the pool's record and the admin view
    quota_model: str | None = None  # the model a 429's QuotaFailure names (cooling is per model)
    violation: dict[str, Any] | None = None  # that QuotaFailure violation, to learn the limit

    @property
    def ok(self) -> bool:
        return self.problem is None


OK = Verdict(None)


def error_of(body: bytes) -> dict[str, Any]:
    """The `error` object of a Google error body ({} when the body is not one)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def error_status(body: bytes) -> int:
    """The HTTP status an error body names (`error.code`, 400–599); 0 when it names none.
    The one place an upstream error body's status is read."""
    code = error_of(body).get("code")
    return code if isinstance(code, int) and 400 <= code <= 599 else 0


def _reason(error: dict[str, Any]) -> str:
    info = find_detail(error, "ErrorInfo")
    return str(info.get("reason", "")) if info else ""


def classify(status: int, body: bytes) -> Verdict:
    if 200 <= status < 300:
        return OK
    error = error_of(body)
    message = str(error.get("message", ""))
    reason = _reason(error)
    said = f"{status} {error.get('status', '')}: {message}"[:300]
    if status == 429:
        retry_info = find_detail(error, "RetryInfo")
        delay = parse_duration(str(retry_info.get("retryDelay", ""))) if retry_info else None
        failure = find_detail(error, "QuotaFailure")
        violations = (failure or {}).get("violations") or [{}]
        violation = violations[0] if isinstance(violations[0], dict) else {}
        model = (violation.get("quotaDimensions") or {}).get("model")
        return Verdict(ProblemId.QUOTA_EXHAUSTED, "cool_project", retry=True, elsewhere=True,
                       cooldown_s=delay, reason=said, quota_model=model or None,
                       violation=violation or None)
    if reason == "API_KEY_INVALID" or status == 401:
        return Verdict(ProblemId.API_KEY_INVALID, "disable_key", True, True, reason=said)
    if reason == "SERVICE_DISABLED":
        return Verdict(ProblemId.SERVICE_DISABLED, "disable_project", True, True, reason=said)
    if reason == "CONSUMER_SUSPENDED" or "has been suspended" in message:
        return Verdict(ProblemId.CONSUMER_SUSPENDED, "disable_key", True, True, reason=said)
    if reason in _RESTRICTED_REASONS:
        return Verdict(ProblemId.API_KEY_RESTRICTED, "disable_key", True, True, reason=said)
    if "location is not supported" in message:
        return Verdict(ProblemId.LOCATION_UNSUPPORTED, "disable_project", True, True, reason=said)
    if "free tier is not available in your country" in message:
        return Verdict(ProblemId.FREE_TIER_UNAVAILABLE, "disable_project", True, True, reason=said)
    if status in (408, 504):
        return Verdict(ProblemId.UPSTREAM_TIMEOUT, retry=True, reason=said)
    if status == 503:
        return Verdict(ProblemId.MODEL_OVERLOADED, retry=True, reason=said)
    if status in (500, 502):
        return Verdict(ProblemId.UPSTREAM_INTERNAL, retry=True, reason=said)
    if status == 404 and "models/" in message:
        return Verdict(ProblemId.MODEL_NOT_FOUND, reason=said)
    if status == 400:
        return Verdict(ProblemId.INVALID_REQUEST, reason=said)
    if status == 403:
        return Verdict(ProblemId.PERMISSION_DENIED, reason=said)
    return Verdict(ProblemId.UPSTREAM_INTERNAL if status >= 500 else ProblemId.INVALID_REQUEST,
                   retry=status >= 500, reason=said)


NETWORK_FAILURE = Verdict(ProblemId.UPSTREAM_UNREACHABLE, retry=True, reason="connection failed")
TIMEOUT = Verdict(ProblemId.UPSTREAM_TIMEOUT, retry=True, reason="no answer in time")
