"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the HTTP
status the openai SDKs map to their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError). gemgate's `hint` rides along in the same object."""

from __future__ import annotations

from typing import Any

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}
# Codes OpenAI clients branch on; other problems go by gemgate's own id, lower-cased.
_CODES = {
    "TOKEN_MISSING": "invalid_api_key", "TOKEN_INVALID": "invalid_api_key",
    "GOOGLE_KEY_SENT": "invalid_api_key", "KEY_REVOKED": "invalid_api_key",
    "KEY_EXPIRED": "invalid_api_key", "MODEL_NOT_FOUND": "model_not_found",
    "QUOTA_EXHAUSTED": "rate_limit_exceeded", "ALL_PROJECTS_COOLING": "rate_limit_exceeded",
    "NO_QUOTA_ROOM": "rate_limit_exceeded", "KEY_RATE_LIMITED": "rate_limit_exceeded",
    "BUDGET_EXCEEDED": "insufficient_quota",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(status: int, message: str, problem: str | None = None,
                 hint: str | None = None, param: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": error_type(status), "param": param,
                             "code": _CODES.get(problem or "", (problem or "").lower() or None)}
    if hint:
        error["hint"] = hint
    return {"error": error}


def from_google(google: dict[str, Any], status: int, problem: str | None) -> dict[str, Any]:
    """A Google-shaped error (`{"error": {code, message, status, details, hint}}`) retold."""
    error = google.get("error") or {}
    message = str(error.get("message") or error.get("status") or "Upstream error")
    return openai_error(status, message, problem, error.get("hint"))
