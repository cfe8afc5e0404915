"""Where settings come from: a YAML file (`--config`, GEMGATE_CONFIG, or ./gemgate.yaml), then
`.env` and the environment (the real environment wins over `.env`), then flags — flags > env >
file. Invalid configuration fails at start with one message that lists every problem (exit 2),
a misspelt setting with "did you mean", a YAML syntax error with its file, line and column."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError

from gemgate.config.settings import Settings
from gemgate.secrets import mask_key


class ConfigError(Exception):
    """Every problem found in the configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(f"  - {p}" for p in problems))
        self.problems = problems


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
    # The shared backends, as containers are usually given them (passwords stay out of files).
    if env.get("GEMGATE_REDIS_URL", "").strip():
        data["state"] = {"backend": "redis", "url": env["GEMGATE_REDIS_URL"].strip()}
    if env.get("GEMGATE_POSTGRES_DSN", "").strip():
        data["store"] = {"backend": "postgres", "dsn": env["GEMGATE_POSTGRES_DSN"].strip()}
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
