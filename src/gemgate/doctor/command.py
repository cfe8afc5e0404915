"""The `gemgate doctor` command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from . import report
from .findings import failed
from .run import Plan, diagnose


def locale_language(env: Mapping[str, str]) -> str:
    """Chinese when the locale says so (LC_ALL, LC_MESSAGES, LANG, LANGUAGE), else English."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = env.get(name, "").strip()
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="gemgate.yaml whose projects and keys to check.")
@click.option("--key", "keys", multiple=True, metavar="KEY",
              help="Check this Gemini key instead of the configured ones (repeatable).")
@click.option("--model", default="gemini-2.5-flash", show_default=True,
              help="The model of the one-token test request.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None,
              help="Language of the explanations [from the locale].")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--gateway", default=None, metavar="URL",
              help="Also check a running gemgate at URL (reachable, token, round trip).")
@click.option("--token", envvar="GEMGATE_TOKEN", default=None,
              help="The gemgate token for --gateway [GEMGATE_TOKEN].")
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True,
              help="Seconds allowed for each network step.")
def doctor(config_path: Path | None, keys: tuple[str, ...], model: str, lang: str | None,
           as_json: bool, gateway: str | None, token: str | None, timeout_s: float) -> None:
    """Find and explain key, network and quota problems between here and Gemini.

    Exits 0 when every check passes (warnings allowed), 1 otherwise."""
    env = dict(os.environ)
    language = lang or locale_language(env)
    plan = Plan(config_path, keys, model, gateway, token, timeout_s)
    findings = asyncio.run(diagnose(plan, env, Path.cwd()))
    if as_json:
        click.echo(report.as_json(findings, language))
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in env
        click.echo(report.text(findings, language, colour))
    sys.exit(1 if failed(findings) else 0)
