"""`gemgate serve`: load settings, optionally start the simulator as upstream, run the gateway."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from gemgate import __version__
from gemgate.app import AUTH, build_app
from gemgate.config import ConfigError, LimitsConfig, ProjectConfig, Settings, load_settings
from gemgate.logs import setup_logging
from gemgate.secrets import mask_key, url_password
from gemgate.serving import listening_socket, serve_forever
from gemgate.tls import self_signed as self_signed_certificate
from gemgate.tls import trust_hint


def _with_simulator(settings: Settings) -> tuple[Settings, Any, Any]:
    """Points the gateway at an in-process simulator and uses the simulator's keys."""
    from gemgate.simulator import SimConfig
    from gemgate.simulator import build_app as build_simulator

    sim_config = SimConfig(port=0)
    sock = listening_socket("127.0.0.1", 0)
    # The built-in simulator enforces no quotas, so neither does the gateway in front of it:
    # a demo should not be paced by the free tier's real limits.
    unlimited = {"*": LimitsConfig(rpm=1_000_000, tpm=1_000_000_000, rpd=1_000_000_000)}
    projects = [ProjectConfig(name=p.name, tier=p.tier, keys=p.keys, limits=unlimited)
                for p in sim_config.projects]
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    return settings.model_copy(update={"upstream_url": url, "projects": projects}), \
        build_simulator(sim_config), sock


def banner(settings: Settings, port: int, simulated: bool, open_mode: bool | None = None,
           notes: list[str] | None = None) -> str:
    """What a new user needs: where, in front of what, how to call it. `open_mode` is the
    gateway's own view once started (virtual keys in the database close it)."""
    scheme = "https" if settings.server.tls_cert else "http"
    url = f"{scheme}://{settings.host}:{port}{settings.path_prefix}"
    if open_mode is None:
        open_mode = not settings.tenants and settings.loopback_only()
    # A configured token is a secret: the banner (often pasted into chats and tickets) shows
    # only its mask, and the snippet a placeholder for it.
    token = "any-token" if open_mode else "<your gemgate token>"
    keys = sum(len(p.keys) for p in settings.projects)
    upstream = (f"the built-in simulator at {settings.upstream_url} — nothing reaches Google"
                if simulated else settings.upstream_url)
    lines = [
        f"gemgate {__version__} listening on {url}",
        f"  upstream: {upstream}",
        f"  {len(settings.projects)} project(s), {keys} key(s); "
        + ("open to any token (loopback only) until the first virtual key is created"
           if open_mode else
           f"client tokens required (e.g. {mask_key(settings.tenants[0].token)})"
           if settings.tenants else "client tokens required (virtual keys exist)"),
        *[f"  {note}" for note in notes or ()],
        "",
        "pip install google-genai   # the client, in your own environment",
        "from google import genai",
        "from google.genai import types",
        f'client = genai.Client(api_key="{token}",',
        f'                      http_options=types.HttpOptions(base_url="{url}"))',
        'print(client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text)',
    ]
    return "\n".join(lines)


def _worker(settings: Settings, port: int, ready: Any) -> None:
    """One of `--workers N`: its own SO_REUSEPORT socket on the shared port, its own loop."""
    from gemgate.workers import reuse_port_socket

    sock = reuse_port_socket(settings.host, port)
    serve_forever([(build_app(settings), sock)], on_ready=ready.set)


def _run_workers(settings: Settings, count: int, simulate: bool) -> None:
    from gemgate.backends import shared_ready
    from gemgate.workers import Supervisor, reserve_port

    why_not = "--simulate serves one process" if simulate else shared_ready(settings)
    if why_not:
        click.echo(f"gemgate: --workers {count} needs shared backends: {why_not}", err=True)
        sys.exit(2)
    try:
        held = reserve_port(settings.host, settings.port)
    except OSError as exc:
        click.echo(f"gemgate: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        sys.exit(2)
    port = held.getsockname()[1]
    note = [f"{count} worker processes on port {port} (SO_REUSEPORT)"]
    Supervisor(settings, port, count, _worker).run(
        lambda: click.echo(banner(settings, port, False, None, note)))
    held.close()


def run(config_path: Path | None, flags: dict[str, Any], simulate: bool,
        workers: int = 1, self_signed: bool = False) -> None:
    tls = {name: flags.pop(name, None) for name in ("tls_cert", "tls_key")}
    try:
        settings = load_settings(config_path, flags=flags, require_keys=not simulate)
    except ConfigError as exc:
        click.echo(f"gemgate: invalid configuration\n{exc}", err=True)
        sys.exit(2)
    apps, notes = [], []
    if self_signed:
        cert, key = self_signed_certificate(Path(tempfile.mkdtemp(prefix="gemgate-tls-")))
        tls = {"tls_cert": str(cert), "tls_key": str(key)}
        notes += trust_hint(cert)
    if any(tls.values()):  # flags win over the configuration (the files were checked)
        settings = settings.model_copy(update={"server": settings.server.model_copy(
            update={k: v for k, v in tls.items() if v})})
    if simulate:
        ignored = sum(len(p.keys) for p in settings.projects)
        if ignored:
            notes.append(f"note: {ignored} configured upstream key(s) (GEMINI_API_KEYS or "
                         "projects:) are ignored: --simulate uses the simulator's own keys")
        if settings.admin_key is None:  # so the README's admin examples work at once
            settings = settings.model_copy(update={"admin_key": new_admin_key()})
            notes.append(f"admin key (shown once, masked in logs): {settings.admin_key}")
        settings, simulator, sim_sock = _with_simulator(settings)
        apps.append((simulator, sim_sock))
    secrets = [k for p in settings.projects for k in p.keys]
    secrets += [t.token for t in settings.tenants] + [settings.admin_key or ""]
    secrets += [url_password(settings.state.url), url_password(settings.store.dsn)]
    setup_logging(settings.log_level, secrets)
    if workers > 1:
        _run_workers(settings, workers, simulate)
        return
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        click.echo(f"gemgate: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        sys.exit(2)
    app = build_app(settings)
    apps.append((app, sock))
    port = sock.getsockname()[1]
    serve_forever(apps, on_ready=lambda: click.echo(
        banner(settings, port, simulate, app[AUTH].open, notes)))


def new_admin_key() -> str:
    return "gg-admin-" + secrets.token_urlsafe(18)
