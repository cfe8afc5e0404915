"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the HTTP
status the openai SDKs map to their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError). gemgate's `hint` rides along in the same object."""

from __future__ import annotations

from typing import Any

from gemgate.problems import ProblemId, problem

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
          422: "invalid_request_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(status: int, message: str, problem_id: ProblemId | None = None,
                 hint: str | None = None, param: str | None = None) -> dict[str, Any]:
    code = problem(problem_id).code if problem_id is not None else None
    error: dict[str, Any] = {"message": message, "type": error_type(status), "param": param,
                             "code": code}
    if hint:
        error["hint"] = hint
    return {"error": error}


def from_google(google: dict[str, Any], status: int,
                problem_id: ProblemId | None) -> dict[str, Any]:
    """A Google-shaped error (`{"error": {code, message, status, details, hint}}`) retold."""
    error = google.get("error") or {}
    message = str(error.get("message") or error.get("status") or "Upstream error")
    return openai_error(status, message, problem_id, error.get("hint"))
