"""Step 1, the environment: the variables that decide which key a program uses, and whether the
shell, `.env` and the SDKs agree."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from gemgate.config import clean_key
from gemgate.problems import ProblemId
from gemgate.secrets import mask_key

from .findings import Finding

KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEYS")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
_QUOTES = "\"'`“”‘’"
_TRUE = {"1", "true", "yes", "on"}


def env_proxy(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, URL) of the proxy the SDKs and curl would use, if any."""
    for name in PROXY_VARIABLES:
        if env.get(name, "").strip():
            return name, env[name].strip()
    return None


def _keys_in(name: str, raw: str) -> list[str]:
    if name != "GEMINI_API_KEYS":
        return [raw]
    return [item.partition(":")[2] if ":" in item else item for item in raw.split(",")
            if item.strip()]


def _malformed(raw: str) -> str | None:
    """Why a key as written is not a bare key; None when it is one."""
    if raw != raw.strip():
        return "spaces around it"
    if raw[:1] in _QUOTES or raw[-1:] in _QUOTES:
        return "quotes around it"
    try:
        clean_key(raw)
    except ValueError:
        return "spaces, quotes or other characters inside"
    return None


def check_environment(env: Mapping[str, str], dotenv: Path) -> list[Finding]:
    found: list[Finding] = []
    gemini, google = env.get("GEMINI_API_KEY", "").strip(), env.get("GOOGLE_API_KEY", "").strip()
    if gemini and google and gemini.strip(_QUOTES) != google.strip(_QUOTES):
        found.append(Finding("environment", "GEMINI_API_KEY / GOOGLE_API_KEY",
                             f"{mask_key(gemini)} / {mask_key(google)}", "fail",
                             "both set, to different keys; Google's SDKs use GOOGLE_API_KEY",
                             ProblemId.ENV_KEYS_DIFFER))
    for name in KEY_VARIABLES:
        for raw in _keys_in(name, env.get(name, "")):
            why = _malformed(raw) if raw else None
            if why:
                found.append(Finding("environment", name, mask_key(raw.strip(_QUOTES + " ")),
                                     "fail", f"the key has {why}", ProblemId.ENV_KEY_MALFORMED))
    if dotenv.is_file():
        in_file = {k: v for k, v in dotenv_values(dotenv).items() if v}
        for name in KEY_VARIABLES:
            if name in in_file and not env.get(name, "").strip():
                found.append(Finding("environment", name, str(dotenv), "warn",
                                     f"set in {dotenv.name} but not in this shell",
                                     ProblemId.DOTENV_NOT_LOADED))
    if env.get("GOOGLE_GENAI_USE_VERTEXAI", "").strip().lower() in _TRUE:
        found.append(Finding("environment", "GOOGLE_GENAI_USE_VERTEXAI",
                             env["GOOGLE_GENAI_USE_VERTEXAI"], "fail",
                             "the SDK will call Vertex AI instead", ProblemId.VERTEX_MODE_SET))
    proxy = env_proxy(env)
    if proxy is not None:
        found.append(Finding("environment", proxy[0], mask_proxy(proxy[1]), "warn",
                             "in effect for SDKs and curl, not for gemgate",
                             ProblemId.ENV_PROXY_IGNORED))
    if not found:
        found.append(Finding("environment", "variables", ", ".join(KEY_VARIABLES), "ok",
                             "nothing conflicting"))
    return found


def mask_proxy(url: str) -> str:
    """A proxy URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"
