"""One typed settings object, from a YAML file, the environment and flags (flags > env > file).

Invalid configuration fails at start with one message that lists every problem (exit code 2).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gemgate.secrets import mask_key

GOOGLE_URL = "https://generativelanguage.googleapis.com"
Tier = Literal["free", "tier1", "tier2", "tier3"]
Priority = Literal["high", "normal", "low", "batch"]
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_.\-]+$")
_QUOTES = "\"'`“”‘’"


class ConfigError(Exception):
    """Every problem found in the configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def clean_key(raw: str) -> str:
    """Strips the spaces and quotes that copy-paste and .env files leave around keys; refuses
    keys that are still malformed, saying why (without printing the key)."""
    key = raw.strip()
    while len(key) >= 2 and key[0] in _QUOTES and key[-1] in _QUOTES:
        key = key[1:-1].strip()
    if not key:
        raise ValueError("an empty key")
    if not _KEY_CHARS.match(key):
        raise ValueError(f"key {mask_key(key)} contains spaces, quotes or other characters "
                         "that no API key has")
    if _looks_like_placeholder(key):
        raise ValueError(f"key {mask_key(key)} looks like a placeholder from the docs, not a "
                         "real key: paste your own key from https://aistudio.google.com/apikey")
    return key


def _looks_like_placeholder(key: str) -> bool:
    """`AIza...one` (the README's own example), `YOUR_API_KEY` and the like. A real Google key
    is `AIza` and 35 more characters, never with `...` in it; a key cut a little short is left
    for Google to call invalid (doctor then says so), one cut to a stub is a placeholder."""
    lowered = key.lower()
    if "..." in key or lowered.startswith(("your_", "your-", "<")) or lowered in (
            "changeme", "xxx", "api_key", "your_api_key"):
        return True
    return key.startswith("AIza") and len(key) < 20


def check_proxy(proxy: str | None) -> str | None:
    if proxy and proxy.startswith("https://"):
        # TLS to the proxy itself is not supported; an HTTP proxy carries HTTPS through CONNECT.
        raise ValueError("use http:// for an HTTP proxy (HTTPS to Google is tunnelled "
                         "through it); https:// proxies are not supported")
    if proxy and not re.match(r"^(http|socks5h?|socks4)://", proxy):
        raise ValueError("proxy must start with http://, socks5://, socks5h:// or socks4://")
    return proxy or None


def proxy_options(proxy: str) -> tuple[str, dict[str, bool]]:
    """The URL and options python-socks takes: socks5h:// is socks5:// resolving names at the
    proxy (where Google's name may be the only one that resolves truthfully)."""
    if proxy.startswith("socks5h://"):
        return "socks5://" + proxy[len("socks5h://"):], {"rdns": True}
    return proxy, {}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    """Overrides of the built-in limits for one model (or "*"): read yours in AI Studio."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    rpd: int | None = Field(default=None, ge=1)


class ProjectConfig(_Strict):
    """A Google Cloud project: quota is per project, so keys are grouped by it."""

    name: str = Field(min_length=1)
    tier: Tier = "free"
    keys: list[str] = Field(min_length=1)
    proxy: str | None = None  # http://, https://, socks5:// — how this project reaches Google
    limits: dict[str, LimitsConfig] = Field(default_factory=dict)  # model id or "*"

    @field_validator("keys")
    @classmethod
    def _clean(cls, keys: list[str]) -> list[str]:
        cleaned, problems = [], []
        for number, key in enumerate(keys, start=1):
            try:
                cleaned.append(clean_key(key))
            except ValueError as exc:
                problems.append(f"key #{number}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return cleaned

    @field_validator("proxy")
    @classmethod
    def _proxy_scheme(cls, proxy: str | None) -> str | None:
        return check_proxy(proxy)


class TenantConfig(_Strict):
    name: str = Field(min_length=1)
    token: str = Field(min_length=8)
    priority: Priority = "normal"  # when the request names none (x-gemgate-priority)
    weight: float = Field(default=1.0, gt=0)  # share of contended quota against other tenants
    fallback: bool = True  # may be answered by a fallback model

    @field_validator("token")
    @classmethod
    def _clean(cls, token: str) -> str:
        return clean_key(token)


class RetryConfig(_Strict):
    attempts: int = Field(default=5, ge=1, le=20)  # tries in all, the first included
    base_delay_s: float = Field(default=0.2, ge=0)
    max_delay_s: float = Field(default=4.0, ge=0)
    # Longest wait for one attempt's answer (a stream's first chunk) before trying another key
    # within the deadline. Off by default: long generations legitimately take minutes.
    attempt_timeout_s: float | None = Field(default=None, gt=0)


class SchedulingConfig(_Strict):
    enabled: bool = True
    minute_s: float = Field(default=60.0, gt=0)  # the length of Google's "minute" (tests shorten)
    day_s: float | None = Field(default=None, gt=0)  # None: the day ends at midnight Pacific
    margin_s: float = Field(default=0.5, ge=0)  # entries count this much longer than Google's
    spill: list[Priority] = Field(default_factory=lambda: list[Priority](["high", "normal"]))
    fallback_after_s: float = Field(default=1.0, ge=0)  # waiting for room before falling back


class AutoConfig(_Strict):
    """The models `model: auto` chooses between, by the request's score."""

    light: str = "gemini-2.5-flash-lite"
    standard: str = "gemini-2.5-flash"
    heavy: str = "gemini-2.5-pro"


class LedgerConfig(_Strict):
    """Where usage records go: a SQLite file (WAL), written by one group-committing thread."""

    enabled: bool = True
    path: str = "gemgate.db"
    # normal: a commit survives the gateway being killed; full: also a power cut (fsync).
    synchronous: Literal["normal", "full"] = "normal"
    retention_days: float | None = Field(default=400, gt=0)  # request rows; None keeps all
    # How long a response waits for its record's commit before going out anyway (and the
    # record is still written once the database answers).
    commit_timeout_s: float = Field(default=5.0, gt=0)
    price_free_tier: bool = False  # count free-tier requests at paid prices (showback)
    key_refresh_s: float = Field(default=1.0, gt=0)  # how soon CLI key changes are seen


class BudgetConfig(_Strict):
    alert_at: float = Field(default=0.8, gt=0, lt=1)  # share of a budget that raises an alert
    webhook_url: str | None = None  # receives each alert as a JSON POST

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url or None


class PriceConfig(_Strict):
    """USD per 1M tokens; see gemgate/prices.py for how each is applied."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached: float = Field(default=0.0, ge=0)
    audio_input: float | None = Field(default=None, ge=0)
    input_long: float | None = Field(default=None, ge=0)
    output_long: float | None = Field(default=None, ge=0)
    cached_long: float | None = Field(default=None, ge=0)


_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


class ProviderConfig(_Strict):
    """An OpenAI-compatible upstream (DeepSeek, OpenRouter, a vLLM server, …): the last links of
    fallback chains, or an alias's target, named `<provider>/<model>`."""

    name: str
    base_url: str  # the API root its SDK would use, e.g. https://api.deepseek.com/v1
    keys: list[str] = Field(min_length=1)  # tried in turn; a refused key cools for a while
    models: dict[str, str] = Field(default_factory=dict)  # gemgate's name -> the provider's id
    proxy: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _PROVIDER_NAME.match(name) or name in ("gemini", "models", "tunedmodels"):
            raise ValueError("a provider name is lower-case letters, digits, '-' or '_', and "
                             "not gemini, models or tunedModels")
        return name

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("keys")
    @classmethod
    def _clean(cls, keys: list[str]) -> list[str]:
        return [clean_key(key) for key in keys]

    @field_validator("proxy")
    @classmethod
    def _proxy_scheme(cls, proxy: str | None) -> str | None:
        return check_proxy(proxy)


class RemoteImagesConfig(_Strict):
    """Image URLs in OpenAI messages are fetched by the gateway only from these hosts."""

    allowed_hosts: list[str] = Field(default_factory=list)  # "img.example.com", "*.cdn.com"
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    timeout_s: float = Field(default=10.0, gt=0)


class OpenAIConfig(_Strict):
    """The OpenAI-compatible surface (/v1/chat/completions, /v1beta/openai/…)."""

    remote_images: RemoteImagesConfig = Field(default_factory=RemoteImagesConfig)


class OutlierConfig(_Strict):
    """Keys and projects that keep failing with 5xx are set aside (upstream/outliers.py)."""

    consecutive_failures: int = Field(default=5, ge=1)
    base_ejection_s: float = Field(default=30.0, gt=0)
    max_ejection_s: float = Field(default=300.0, gt=0)
    max_ejected_share: float = Field(default=0.5, gt=0, le=1)  # of keys, and of projects


class ServerConfig(_Strict):
    """The HTTP server's own limits against clients that hold connections without using them
    (slowloris). Defaults follow nginx: generous enough for any honest client on a slow link."""

    # A connection with no complete request for this long is closed: one that sends nothing,
    # only part of its headers, or idles between keep-alive requests. Above the 60 s idle
    # timeout of common load balancers, so they never reuse a connection gemgate just closed.
    idle_timeout_s: float = Field(default=75.0, gt=0)
    # The longest pause between two pieces of a request body (not a limit on the whole upload).
    body_idle_timeout_s: float = Field(default=60.0, gt=0)
    # The address clients reach gemgate at (https://gemini.example.com/prefix), used where
    # gemgate hands out its own URL (resumable uploads); otherwise taken from the request,
    # with X-Forwarded-Proto/-Host believed from trusted_proxies only.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/") if url else None


class CorsConfig(_Strict):
    """Browsers may call gemgate from these origins (none by default: CORS off)."""

    allowed_origins: list[str] = Field(default_factory=list)  # "https://app.example.com", "*"
    max_age_s: int = Field(default=600, ge=0)  # how long a browser may cache a preflight


def _default_fallbacks() -> dict[str, list[str]]:
    return {"gemini-2.5-pro": ["gemini-2.5-flash", "gemini-2.5-flash-lite"],
            "gemini-2.5-flash": ["gemini-2.5-flash-lite"]}


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    path_prefix: str = ""  # serve under e.g. /gemini when behind a shared reverse proxy
    upstream_url: str = GOOGLE_URL
    projects: list[ProjectConfig] = Field(default_factory=list)
    tenants: list[TenantConfig] = Field(default_factory=list)
    admin_key: str | None = None
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    deadline_s: float = Field(default=60.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    quota_cooldown_s: float = Field(default=60.0, gt=0)  # when a 429 carries no RetryInfo
    probe_interval_s: float = Field(default=60.0, gt=0)
    probe_model: str = "gemini-2.5-flash-lite"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    stream_idle_timeout_s: float = Field(default=120.0, gt=0)
    log_requests: bool = True
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    fallback: dict[str, list[str]] = Field(default_factory=_default_fallbacks)
    aliases: dict[str, str] = Field(default_factory=dict)  # e.g. {"fast": "gemini-2.5-flash-lite"}
    auto: AutoConfig = Field(default_factory=AutoConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    budgets: BudgetConfig = Field(default_factory=BudgetConfig)
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    timezone: str = "UTC"  # of budget periods and of days in usage reports
    # Reverse proxies whose X-Forwarded-For is believed (for virtual keys' IP allowlists).
    trusted_proxies: list[str] = Field(default_factory=list)
    providers: list[ProviderConfig] = Field(default_factory=list)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    outliers: OutlierConfig = Field(default_factory=OutlierConfig)
    cors: CorsConfig = Field(default_factory=CorsConfig)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (e.g. UTC, Asia/Shanghai)") from None
        return zone

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, cidrs: list[str]) -> list[str]:
        try:
            return [str(ipaddress.ip_network(c.strip(), strict=False)) for c in cidrs]
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("upstream_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        prefix = prefix.strip().rstrip("/")
        return prefix if not prefix or prefix.startswith("/") else "/" + prefix

    @field_validator("admin_key")
    @classmethod
    def _admin(cls, key: str | None) -> str | None:
        return clean_key(key) if key else None

    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _split(value: str) -> list[str]:
    return [item for item in re.split(r"[,\n]", value) if item.strip()]


def projects_from_env(value: str, tier: str = "free") -> list[dict[str, Any]]:
    """GEMINI_API_KEYS: `key,key` or `project:key,project:key` (keys of one project share
    its quota). A key without a project name is taken as its own project. All are of `tier`
    (GEMGATE_TIER), which sets the limits gemgate paces them by."""
    grouped: dict[str, list[str]] = {}
    for n, item in enumerate(_split(value), start=1):
        name, sep, key = item.partition(":")
        if not sep:
            name, key = f"key-{n}", item
        grouped.setdefault(name.strip(), []).append(key)
    return [{"name": name, "keys": keys, "tier": tier} for name, keys in grouped.items()]


def tenants_from_env(value: str) -> list[dict[str, Any]]:
    """GEMGATE_CLIENT_KEYS: `token,token` or `name:token,name:token`."""
    tenants = []
    for n, item in enumerate(_split(value), start=1):
        name, sep, token = item.partition(":")
        tenants.append({"name": name.strip(), "token": token} if sep else
                       {"name": f"client-{n}", "token": item})
    return tenants


_ENV_SCALARS = {
    "GEMGATE_HOST": "host", "GEMGATE_PORT": "port", "GEMGATE_UPSTREAM_URL": "upstream_url",
    "GEMGATE_ADMIN_KEY": "admin_key", "GEMGATE_PATH_PREFIX": "path_prefix",
    "GEMGATE_DEADLINE_S": "deadline_s", "GEMGATE_MAX_BODY_BYTES": "max_body_bytes",
    "GEMGATE_LOG_LEVEL": "log_level", "GEMGATE_PROBE_INTERVAL_S": "probe_interval_s",
    "GEMGATE_TIMEZONE": "timezone",
}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, field in _ENV_SCALARS.items():
        if env.get(name, "").strip():
            data[field] = env[name].strip()
    keys = env.get("GEMINI_API_KEYS", "").strip() or env.get("GEMINI_API_KEY", "").strip()
    if keys:
        data["projects"] = projects_from_env(keys, env.get("GEMGATE_TIER", "free").strip())
    if env.get("GEMGATE_DB", "").strip():
        data["ledger"] = {"path": env["GEMGATE_DB"].strip()}
    if env.get("GEMGATE_CLIENT_KEYS", "").strip():
        data["tenants"] = tenants_from_env(env["GEMGATE_CLIENT_KEYS"])
    return data


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The setting names valid where `loc` points (for "did you mean")."""
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
            for inner in getattr(candidate, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    model = inner
                    break
    return list(getattr(model, "model_fields", {}))


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and item["loc"]:
            close = difflib.get_close_matches(str(item["loc"][-1]), _fields_at(item["loc"]),
                                              n=1, cutoff=0.6)
            message = "not a setting gemgate knows" + (f"; did you mean `{close[0]}`?"
                                                       if close else "")
        problems.append(f"{where}: {message}")
    return problems


def _check_whole(settings: Settings) -> list[str]:
    problems = []
    seen: dict[str, str] = {}
    for project in settings.projects:
        for key in project.keys:
            if key in seen:
                problems.append(f"projects: key {mask_key(key)} is listed in both "
                                f"{seen[key]} and {project.name}")
            seen[key] = project.name
    names = [p.name for p in settings.projects]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"projects: the name {name} is used twice")
    problems += _check_provider_links(settings)
    if not settings.loopback_only() and not settings.tenants and not settings.admin_key:
        problems.append(f"host: listening on {settings.host} beyond loopback needs client "
                        "tokens (GEMGATE_CLIENT_KEYS or tenants:) or an admin key to create "
                        "virtual keys with, so strangers cannot spend your quota")
    return problems


def _check_provider_links(settings: Settings) -> list[str]:
    """Every `<provider>/<model>` named in fallbacks or aliases must name a declared provider."""
    names = [p.name for p in settings.providers]
    problems = [f"providers: the name {n} is used twice" for n in set(names)
                if names.count(n) > 1]
    links = [(f"fallback.{m}", link) for m, chain in settings.fallback.items() for link in chain]
    links += [(f"aliases.{a}", target) for a, target in settings.aliases.items()]
    for where, link in links:
        provider, slash, _ = link.partition("/")
        if slash and provider not in names:
            problems.append(f"{where}: {link} names no provider (declared: "
                            f"{', '.join(names) or 'none'})")
    return problems


DEFAULT_FILE = "gemgate.yaml"


def _default_file() -> str | None:
    """./gemgate.yaml when it exists and no file was named (--config, GEMGATE_CONFIG)."""
    return DEFAULT_FILE if Path(DEFAULT_FILE).is_file() else None


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                  flags: Mapping[str, Any] | None = None, dotenv: str | Path | None = ".env",
                  require_keys: bool = True) -> Settings:
    """Reads file, then `.env` and the environment (the real environment wins over `.env`),
    then flags. Raises ConfigError listing every problem."""
    environment = dict(env if env is not None else os.environ)
    if dotenv and Path(dotenv).is_file():
        from_file = {k: v for k, v in dotenv_values(dotenv).items() if v is not None}
        environment = {**from_file, **environment}
    path = path or environment.get("GEMGATE_CONFIG") or _default_file()
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc}"]) from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: {exc}"]) from None
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path}: the file must hold a mapping of settings"])
        data.update(loaded)
    for name, value in _from_env(environment).items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            value = {**data[name], **value}  # GEMGATE_DB sets ledger.path, keeps the rest
        data[name] = value
    data.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    problems = _check_whole(settings)
    if require_keys and not settings.projects:
        problems.append("projects: no upstream keys — set GEMINI_API_KEYS or projects: in the "
                        "YAML file (or run with --simulate)")
    if problems:
        raise ConfigError(problems)
    return settings
