"""The order of the checks: the environment once; then for each route to Google (direct, or a
project's proxy) the network; then each key, and one small request per project; then the
gateway. A chain stops at its first failure: what follows it is marked skipped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp_socks import ProxyConnector

from gemgate.config import GOOGLE_URL, ConfigError, clean_key, load_settings, proxy_options
from gemgate.problems import ProblemId
from gemgate.secrets import mask_key

from .environment import check_environment, env_proxy, mask_proxy
from .findings import Finding
from .gateway import check_gateway
from .network import probe, probe_through, proxy_answers
from .upstream import check_generate, check_key


@dataclass(frozen=True, slots=True)
class Plan:
    """What to check, from the command line."""

    config_path: Path | None = None
    keys: tuple[str, ...] = ()
    model: str = "gemini-2.5-flash"
    gateway: str | None = None
    token: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Subject:
    project: str
    key: str
    proxy: str | None

    @property
    def label(self) -> str:
        return f"{self.project} {mask_key(self.key)}"


def _subjects(plan: Plan, env: Mapping[str, str], cwd: Path
              ) -> tuple[list[Subject], str, Finding | None]:
    """The keys to check (given, or configured), the upstream URL, and a configuration error."""
    try:
        settings = load_settings(plan.config_path, env=env, dotenv=cwd / ".env",
                                 require_keys=False)
    except ConfigError as exc:
        failure = Finding("environment", "configuration", str(plan.config_path or ".env/env"),
                          "fail", "; ".join(exc.problems), ProblemId.CONFIG_INVALID)
        return [], GOOGLE_URL, failure
    if plan.keys:
        given = []
        for number, raw in enumerate(plan.keys, start=1):
            try:
                given.append(Subject(f"--key {number}", clean_key(raw), None))
            except ValueError as exc:
                return [], settings.upstream_url, Finding(
                    "environment", f"--key {number}", mask_key(raw.strip()), "fail", str(exc),
                    ProblemId.ENV_KEY_MALFORMED)
        return given, settings.upstream_url, None
    return ([Subject(p.name, k, p.proxy) for p in settings.projects for k in p.keys],
            settings.upstream_url, None)


def _session(proxy: str | None) -> aiohttp.ClientSession:
    if proxy is None:
        return aiohttp.ClientSession()
    url, options = proxy_options(proxy)
    return aiohttp.ClientSession(connector=ProxyConnector.from_url(url, **options))


async def _route(plan: Plan, url: str, proxy: str | None,
                 subjects: list[Subject]) -> list[Finding]:
    network = (await probe_through(url, proxy, plan.timeout_s) if proxy
               else await probe(url, plan.timeout_s))
    if any(f.status == "fail" for f in network):
        via = f" (via {mask_proxy(proxy)})" if proxy else ""
        return network + [Finding("key", "key", s.label, "skip", f"the network failed{via}")
                          for s in subjects]
    found = list(network)
    async with _session(proxy) as http:
        by_project: dict[str, list[Subject]] = {}
        for subject in subjects:
            by_project.setdefault(subject.project, []).append(subject)
        for keys in by_project.values():
            usable: tuple[Subject, list[str]] | None = None
            for subject in keys:
                verdict, models = await check_key(http, url, subject.key, subject.label,
                                                  plan.timeout_s)
                found.append(verdict)
                if verdict.status == "ok" and usable is None:
                    usable = (subject, models)
            if usable is None:
                found.append(Finding("model", plan.model, keys[0].project, "skip",
                                     "no key of this project was accepted"))
                continue
            subject, models = usable
            found.append(await check_generate(http, url, subject.key, plan.model, models,
                                              subject.label, plan.timeout_s))
    return found


async def diagnose(plan: Plan, env: Mapping[str, str], cwd: Path) -> list[Finding]:
    findings = check_environment(env, cwd / ".env")
    proxy = env_proxy(env)
    if proxy is not None:
        answered = await proxy_answers(proxy[1], plan.timeout_s)
        answered.stage, answered.check = "environment", proxy[0]
        findings.append(answered)
    subjects, url, config_error = _subjects(plan, env, cwd)
    if config_error is not None:
        findings.append(config_error)
    elif not subjects and plan.gateway is None:
        findings.append(Finding("environment", "keys", "GEMINI_API_KEYS / projects:", "fail",
                                "no upstream key to check", ProblemId.NO_UPSTREAM_KEYS))
    routes: dict[str | None, list[Subject]] = {}
    for subject in subjects:
        routes.setdefault(subject.proxy, []).append(subject)
    for route_proxy, on_route in routes.items():
        findings += await _route(plan, url, route_proxy, on_route)
    if plan.gateway is not None:
        async with aiohttp.ClientSession() as http:
            findings += await check_gateway(http, plan.gateway, plan.token, plan.model,
                                            plan.timeout_s)
    return findings
