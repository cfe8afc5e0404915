"""`gemgate batch run|estimate`: the command line of batch work (see batch/runner.py)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import click
from aiohttp import web
from tqdm import tqdm

from gemgate.batch.estimate import estimate_file
from gemgate.batch.google import MAX_JOB_BYTES, GoogleBatch
from gemgate.batch.journal import Journal
from gemgate.batch.runner import BatchError, Plan, Progress, Runner, Summary, journal_path
from gemgate.config import ConfigError, Settings, load_settings

PRIORITIES = ("batch", "low", "normal", "high")


@click.group()
def batch() -> None:
    """Large jobs of prompts: resumable, crash-safe, metered."""


@batch.command("run")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where the answers go, one line per input line, in input order.")
@click.option("--model", help="For lines that name none (e.g. gemini-2.5-flash).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--priority", type=click.Choice(PRIORITIES), default="batch", show_default=True,
              help="batch: free quota first, behind interactive traffic.")
@click.option("--gateway", help="A running gateway's URL; without it, one runs in this "
                                "process with the local configuration.")
@click.option("--token", envvar="GEMGATE_TOKEN", help="Your gateway token [GEMGATE_TOKEN].")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="gemgate.yaml, for an in-process run.")
@click.option("--retry-failed", is_flag=True, help="Send again the lines that ended in error.")
@click.option("--mode", type=click.Choice(["gateway", "google"]), default="gateway",
              show_default=True, help="google: through Gemini's Batch API (half the price, "
                                      "results within 24 h).")
@click.option("--poll-s", type=click.FloatRange(0.01), default=10.0, show_default=True,
              help="--mode google: seconds between polls of the jobs.")
@click.option("--max-job-bytes", type=click.IntRange(1024), default=MAX_JOB_BYTES,
              help="--mode google: the largest input file of one job [just under 2 GB].")
def run_command(source: Path, output: Path, model: str | None, concurrency: int, priority: str,
                gateway: str | None, token: str | None, config_path: Path | None,
                retry_failed: bool, mode: str, poll_s: float, max_job_bytes: int) -> None:
    """Run every line of SOURCE (JSONL: Gemini or OpenAI bodies, each with an "id").

    Re-running the same command goes on where the last run stopped, and never calls an id
    already done."""
    settings = None if gateway else _settings(config_path)
    if token is None and settings is not None and settings.tenants:
        token = settings.tenants[0].token
    try:
        summary = asyncio.run(_run(source, output, model, concurrency, priority, gateway,
                                   token, retry_failed, settings, mode, poll_s,
                                   max_job_bytes))
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_said(summary, output))
    if not summary.complete:
        sys.exit(130)


@batch.command("estimate")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", help="For lines that name none.")
@click.option("--output-tokens", type=click.IntRange(0), default=None,
              help="Answer length to price per line [its maxOutputTokens, else 500].")
@click.option("--offline", is_flag=True, help="Count tokens locally (no countTokens calls).")
@click.option("--gateway", help="A running gateway (countTokens goes through it).")
@click.option("--token", envvar="GEMGATE_TOKEN")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def estimate_command(source: Path, model: str | None, output_tokens: int | None,
                     offline: bool, gateway: str | None, token: str | None,
                     config_path: Path | None) -> None:
    """Tokens and USD for SOURCE before running it: interactive and Batch API prices."""
    settings = None if gateway and offline else _settings(config_path)
    if token is None and settings is not None and settings.tenants:
        token = settings.tenants[0].token
    report = asyncio.run(_estimate(source, model, output_tokens, offline, gateway, token,
                                   settings))
    click.echo(report)


def _settings(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"the configuration has problems:\n{exc}") from None


async def _run(source: Path, output: Path, model: str | None, concurrency: int, priority: str,
               gateway: str | None, token: str | None, retry_failed: bool,
               settings: Settings | None, mode: str, poll_s: float,
               max_job_bytes: int) -> Summary:
    async with _gateway(gateway, settings) as url:
        plan = Plan(source, output, url, token, model, concurrency, priority, retry_failed)
        runner: Runner | GoogleBatch = Runner(plan, _bar) if mode == "gateway" else \
            GoogleBatch(plan, _bar, poll_s, max_job_bytes)
        loop = asyncio.get_running_loop()

        def interrupted() -> None:  # the first Ctrl-C stops cleanly; a second one at once
            runner.stop()
            loop.remove_signal_handler(signal.SIGINT)
            print("\nstopping: the lines in flight finish and are kept (Ctrl-C again to "
                  "quit now)", file=sys.stderr)

        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, interrupted)
        return await runner.run()


async def _estimate(source: Path, model: str | None, output_tokens: int | None, offline: bool,
                    gateway: str | None, token: str | None, settings: Settings | None) -> str:
    if offline:
        return await estimate_file(source, model, output_tokens, None, token, settings)
    async with _gateway(gateway, settings) as url:
        return await estimate_file(source, model, output_tokens, url, token, settings)


@contextlib.asynccontextmanager
async def _gateway(url: str | None, settings: Settings | None) -> AsyncIterator[str]:
    """A running gateway's URL, or one served from this process on a loopback port."""
    if url is not None:
        yield url
        return
    from gemgate.app import build_app

    assert settings is not None
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def _bar(total: int, done: int) -> Progress:
    bar: Progress = tqdm(total=total, initial=done, unit="line", dynamic_ncols=True,
                         disable=None)  # off when stderr is not a terminal
    return bar


def _said(summary: Summary, output: Path) -> str:
    line = (f"{summary.done:,} of {summary.total:,} lines done, {summary.failed:,} failed, "
            f"{summary.tokens:,} tokens, ${summary.cost_usd:.4f}")
    if summary.complete:
        return f"{line}; written to {output}"
    return f"{line}; stopped — run the same command again to go on where it stopped"


@batch.command("status")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
def status_command(output: Path) -> None:
    """How far the run writing OUTPUT is: lines done and failed, and its Batch API jobs."""
    journal = _journal_of(output)
    done, failed, tokens, cost = journal.totals()
    click.echo(f"{done:,} lines done, {failed:,} failed, {tokens:,} tokens, ${cost:.4f}")
    for name, model, state in journal.jobs():
        click.echo(f"{name}  {model}  {state}  {len(journal.job_lines(name)):,} lines")


@batch.command("list")
@click.option("--gateway", required=True, help="The gateway's URL.")
@click.option("--token", envvar="GEMGATE_TOKEN")
def list_command(gateway: str, token: str | None) -> None:
    """Your Batch API jobs (the gateway shows each tenant only its own)."""
    for job in asyncio.run(_jobs(gateway, token)):
        metadata = job.get("metadata") or {}
        stats = metadata.get("batchStats") or {}
        click.echo(f"{job.get('name')}  {metadata.get('state')}  {metadata.get('model')}  "
                   f"{stats.get('requestCount', '?')} requests  {metadata.get('displayName', '')}")


@batch.command("cancel")
@click.argument("target")
@click.option("--gateway", required=True, help="The gateway's URL.")
@click.option("--token", envvar="GEMGATE_TOKEN")
def cancel_command(target: str, gateway: str, token: str | None) -> None:
    """Cancels a Batch API job (batches/ID), or every unfinished job of the run writing
    TARGET (an output file)."""
    names = [target] if target.startswith("batches/") else [
        name for name, _, state in _journal_of(Path(target)).jobs()
        if state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")]
    for name in names:
        said = asyncio.run(_cancel(gateway, token, name))
        click.echo(f"{name}: {said}")


def _journal_of(output: Path) -> Journal:
    path = journal_path(output)
    if not path.exists():
        raise click.ClickException(f"no run writes {output} (no {path})")
    return Journal(path)


async def _jobs(gateway: str, token: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    headers = {"x-goog-api-key": token} if token else {}
    page = ""
    async with aiohttp.ClientSession(headers=headers) as session:
        while True:
            async with session.get(f"{gateway.rstrip('/')}/v1beta/batches",
                                   params={"pageSize": "100", **({"pageToken": page}
                                                                 if page else {})}) as answer:
                data = await answer.json(content_type=None)
            if answer.status != 200:
                raise click.ClickException(f"the gateway answered {answer.status}: {data}")
            found += data.get("operations") or []
            page = data.get("nextPageToken") or ""
            if not page:
                return found


async def _cancel(gateway: str, token: str | None, name: str) -> str:
    headers = {"x-goog-api-key": token} if token else {}
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.post(f"{gateway.rstrip('/')}/v1beta/{name}:cancel") as answer:
        return "cancelled" if answer.status == 200 else \
            f"{answer.status} {(await answer.text())[:300]}"
