"""Google's error wire shape: `{"error": {code, message, status, details}}`.

Both the simulator and the gateway speak it, so the one builder lives here. The SDKs read
`code`, `status` and `message`; `details` carries typed payloads such as RetryInfo.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from gemgate.problems import ProblemId

STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: ProblemId.PERMISSION_DENIED,
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

TYPE_PREFIX = "type.googleapis.com/google.rpc."
SERVICE = "generativelanguage.googleapis.com"


def error_dict(
    code: int,
    message: str,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": status or STATUS_BY_CODE.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def error_body(
    code: int,
    message: str,
    status: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> bytes:
    return orjson.dumps(error_dict(code, message, status, details))


def format_duration(seconds: float) -> str:
    """A protobuf Duration in JSON form, in whole seconds rounded up: a client that waits it is
    never early."""
    return f"{max(0, math.ceil(seconds))}s"


def parse_duration(text: str) -> float | None:
    """Reads "26s" or "1.5s"; None when the text is not a Duration."""
    if not isinstance(text, str) or not text.endswith("s"):
        return None
    try:
        return max(0.0, float(text[:-1]))
    except ValueError:
        return None


def retry_info(seconds: float) -> dict[str, Any]:
    return {"@type": TYPE_PREFIX + "RetryInfo", "retryDelay": format_duration(seconds)}


def error_info(reason: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "@type": TYPE_PREFIX + "ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": SERVICE, **(metadata or {})},
    }


def localized_message(message: str) -> dict[str, Any]:
    return {"@type": TYPE_PREFIX + "LocalizedMessage", "locale": "en-US", "message": message}


def help_links(*links: tuple[str, str]) -> dict[str, Any]:
    return {
        "@type": TYPE_PREFIX + "Help",
        "links": [{"description": text, "url": url} for text, url in links],
    }


def bad_request(field: str, description: str) -> dict[str, Any]:
    violation = {"field": field, "description": description} if field else {
        "description": description
    }
    return {"@type": TYPE_PREFIX + "BadRequest", "fieldViolations": [violation]}


def find_detail(error: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The first detail of `kind` (e.g. "RetryInfo") in an `error` object, if any."""
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("." + kind):
            return detail
    return None
