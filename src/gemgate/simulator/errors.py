"""Google's exact error answers, as the real Gemini API sends them (messages, statuses, details)."""

from __future__ import annotations

from gemgate.google_errors import (
    bad_request,
    error_body,
    error_info,
    help_links,
    localized_message,
)
from gemgate.simulator.quota import QUOTA_MESSAGE, Exhausted

Answer = tuple[int, bytes]

_INVALID_KEY = "API key not valid. Please pass a valid API key."
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


def missing_key() -> Answer:
    return 403, error_body(403, _UNREGISTERED, "PERMISSION_DENIED")


def invalid_key() -> Answer:
    details = [error_info("API_KEY_INVALID"), localized_message(_INVALID_KEY)]
    return 400, error_body(400, _INVALID_KEY, "INVALID_ARGUMENT", details)


def service_disabled(project_number: int) -> Answer:
    url = (
        "https://console.developers.google.com/apis/api/generativelanguage.googleapis.com/"
        f"overview?project={project_number}"
    )
    message = (
        f"Generative Language API has not been used in project {project_number} before or it is "
        f"disabled. Enable it by visiting {url} then retry. If you enabled this API recently, "
        "wait a few minutes for the action to propagate to our systems and retry."
    )
    details = [
        error_info("SERVICE_DISABLED", {
            "consumer": f"projects/{project_number}",
            "activationUrl": url,
            "serviceTitle": "Generative Language API",
            "containerInfo": str(project_number),
        }),
        localized_message(message),
        help_links(("Google developers console API activation", url)),
    ]
    return 403, error_body(403, message, "PERMISSION_DENIED", details)


def location_not_supported() -> Answer:
    return 400, error_body(400, "User location is not supported for the API use.",
                           "FAILED_PRECONDITION")


def free_tier_unavailable() -> Answer:
    message = ("Gemini API free tier is not available in your country. Please enable billing on "
               "your project in Google AI Studio.")
    return 400, error_body(400, message, "FAILED_PRECONDITION")


def key_restricted(kind: str, project_number: int, caller_ip: str = "") -> Answer:
    """A key whose restrictions (set in the Cloud console) refuse this call."""
    reasons = {
        "ip_restricted": ("API_KEY_IP_ADDRESS_BLOCKED",
                          "The provided API key has an IP address restriction. The originating "
                          f"IP address of the call ({caller_ip or 'unknown'}) violates this "
                          "restriction."),
        "referrer_restricted": ("API_KEY_HTTP_REFERRER_BLOCKED",
                                "Requests from referer <empty> are blocked."),
        "api_restricted": ("API_KEY_SERVICE_BLOCKED",
                           "Requests to this API generativelanguage.googleapis.com method "
                           "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent "
                           "are blocked."),
    }
    reason, message = reasons[kind]
    details = [error_info(reason, {"consumer": f"projects/{project_number}"}),
               localized_message(message)]
    return 403, error_body(403, message, "PERMISSION_DENIED", details)


def consumer_suspended(key: str, project_number: int) -> Answer:
    # Google spells the whole key out in this message; a gateway must mask it before relaying.
    message = f"Permission denied: Consumer 'api_key:{key}' has been suspended."
    details = [error_info("CONSUMER_SUSPENDED", {"consumer": f"projects/{project_number}"}),
               localized_message(message)]
    return 403, error_body(403, message, "PERMISSION_DENIED", details)


def model_not_found(model: str, version: str, method: str | None) -> Answer:
    if method is None:
        message = f"models/{model} is not found for API version {version}"
    else:
        message = (
            f"models/{model} is not found for API version {version}, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their supported "
            "methods."
        )
    return 404, error_body(404, message, "NOT_FOUND")


def route_not_found(path: str) -> Answer:
    return 404, error_body(404, f"Method not found: {path}", "NOT_FOUND")


def invalid_argument(message: str, field: str | None = None) -> Answer:
    details = [bad_request(field or "", message)] if field is not None else None
    return 400, error_body(400, message, "INVALID_ARGUMENT", details)


def quota_exhausted(exhausted: Exhausted) -> Answer:
    return 429, error_body(429, QUOTA_MESSAGE, "RESOURCE_EXHAUSTED", exhausted.details())


def injected(code: int, retry_after_s: float = 30.0, model: str = "") -> Answer:
    """The server-side failures Google is known to return, by HTTP code."""
    if code == 429:
        exhausted = Exhausted("GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                              "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                              0, retry_after_s, model)
        return quota_exhausted(exhausted)
    messages = {
        500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
              "https://developers.generativeai.google/guide/troubleshooting"),
        503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    }
    status, message = messages.get(code, ("INTERNAL", "Internal error encountered."))
    return code, error_body(code, message, status)
