"""The `gemgate` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from pydantic import ValidationError

from gemgate import __version__


def _fail_config(problem: str) -> None:
    click.echo(f"gemgate: invalid configuration\n{problem}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gemgate")
def main() -> None:
    """gemgate — a fast, dependable gateway in front of Google's Gemini API."""


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Simulator YAML (projects, keys, quotas, models, faults).")
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [8788].")
@click.option("--seed", type=int, default=None, help="Seed for faults drawn by probability.")
@click.option("--any-key", is_flag=True, default=None, help="Accept any non-empty API key.")
@click.option("--latency-ms", type=float, default=None, help="Added to every answer.")
@click.option("--ttfb-ms", type=float, default=None, help="Before a stream's first chunk.")
@click.option("--chunk-delay-ms", type=float, default=None, help="Between stream chunks.")
@click.option("--minute-seconds", type=float, default=None,
              help="Length of a quota minute (shorten for tests).")
@click.option("--rpm", type=int, default=None, help="Requests per minute, every project/model.")
@click.option("--tpm", type=int, default=None, help="Input tokens per minute, likewise.")
@click.option("--rpd", type=int, default=None, help="Requests per day, likewise.")
@click.option("--fault", "faults", multiple=True, metavar="KIND[:PROBABILITY]",
              help="Inject 429/500/503/504/reset/midstream, e.g. --fault 503:0.3 (repeatable).")
def simulate(config_path: Path | None, host: str | None, port: int | None, seed: int | None,
             any_key: bool | None, latency_ms: float | None, ttfb_ms: float | None,
             chunk_delay_ms: float | None, minute_seconds: float | None, rpm: int | None,
             tpm: int | None, rpd: int | None, faults: tuple[str, ...]) -> None:
    """Run the built-in Gemini simulator as a server."""
    from gemgate.simulator import SimConfig, build_app
    from gemgate.simulator.banner import banner

    try:
        config = SimConfig.from_yaml(config_path) if config_path else SimConfig()
        flags = {"host": host, "port": port, "seed": seed, "any_key": any_key,
                 "latency_ms": latency_ms, "ttfb_ms": ttfb_ms, "chunk_delay_ms": chunk_delay_ms,
                 "minute_seconds": minute_seconds}
        data = config.model_dump()
        data.update({k: v for k, v in flags.items() if v is not None})
        limits = {k: v for k, v in {"rpm": rpm, "tpm": tpm, "rpd": rpd}.items() if v is not None}
        if limits:
            for project in data["projects"]:
                project["quotas"]["*"] = limits
        for fault in faults:
            kind, _, probability = fault.partition(":")
            data["faults"].append({"kind": kind, "probability": float(probability or 1)})
        config = SimConfig.model_validate(data)
    except (ValidationError, ValueError, OSError) as exc:
        _fail_config(str(exc))
        return
    from gemgate.serving import listening_socket, serve_forever

    sock = listening_socket(config.host, config.port)
    bound = sock.getsockname()[1]
    serve_forever([(build_app(config), sock)],
                  on_ready=lambda: click.echo(banner(config, bound), nl=True))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="gemgate.yaml (projects, keys, tokens, limits).")
@click.option("--host", default=None, help="Interface to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [8787].")
@click.option("--simulate", is_flag=True,
              help="Use the built-in Gemini simulator as upstream (no Google, no keys needed).")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
              default=None)
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes serving the port (SO_REUSEPORT); more than 1 needs the Redis "
                   "state and the PostgreSQL store.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="Serve HTTPS/WSS with this certificate chain (PEM) [server.tls_cert].")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="…and this private key (PEM) [server.tls_key].")
@click.option("--tls", "self_signed", is_flag=True,
              help="With --simulate: HTTPS with a self-signed certificate for localhost.")
def serve(config_path: Path | None, host: str | None, port: int | None, simulate: bool,
          log_level: str | None, workers: int, tls_cert: str | None, tls_key: str | None,
          self_signed: bool) -> None:
    """Run the gateway."""
    from gemgate.serve import run

    if self_signed and not simulate:
        raise click.UsageError("--tls makes a self-signed certificate for a demo: use it with "
                               "--simulate, or give --tls-cert and --tls-key")
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    run(config_path, {"host": host, "port": port, "log_level": log_level,
                      "tls_cert": tls_cert, "tls_key": tls_key}, simulate, workers,
        self_signed)


def _register_commands() -> None:
    from gemgate.batch.command import batch
    from gemgate.doctor.command import doctor
    from gemgate.store_cli import store
    from gemgate.team_cli import usage, vkeys

    main.add_command(vkeys)
    main.add_command(usage)
    main.add_command(doctor)
    main.add_command(store)
    main.add_command(batch)


_register_commands()
