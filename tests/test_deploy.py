"""The deployment files stay true to the gateway: Docker cannot run on this machine, so the
topology they describe (replicas on Redis and PostgreSQL) is exercised with real processes in
test_scale_out.py; this checks the files themselves."""

from __future__ import annotations

from pathlib import Path

import yaml

from gemgate.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_compose_runs_two_replicas_on_redis_and_postgres_behind_nginx() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"gemgate", "nginx", "redis", "postgres", "prometheus", "grafana"}
    gemgate = services["gemgate"]
    assert gemgate["deploy"]["replicas"] == 2
    assert gemgate["build"]["dockerfile"] == "deploy/Dockerfile"
    env = gemgate["environment"]
    assert env["GEMGATE_REDIS_URL"].startswith("redis://redis:")
    assert env["GEMGATE_POSTGRES_DSN"].startswith("postgresql://") and "@postgres:" in env[
        "GEMGATE_POSTGRES_DSN"]
    assert "server gemgate:8787" in (DEPLOY / "nginx.conf").read_text()
    assert "proxy_buffering off" in (DEPLOY / "nginx.conf").read_text()


def test_the_image_runs_unprivileged_and_is_healthy_only_when_ready() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "\nUSER gemgate\n" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/readyz" in dockerfile
    assert '"--config", "/etc/gemgate/gemgate.yaml"' in dockerfile


def test_the_example_configuration_is_valid_with_the_composes_environment(
        tmp_path: Path) -> None:
    text = (DEPLOY / "gemgate.example.yaml").read_text()
    path = tmp_path / "gemgate.yaml"
    path.write_text(text.replace("AIza...one", "AIza" + "a" * 35)
                    .replace("AIza...two", "AIza" + "b" * 35))
    settings = load_settings(path, env={
        "GEMGATE_ADMIN_KEY": "gg-admin-0123456789abcdef",
        "GEMGATE_REDIS_URL": "redis://redis:6379/0",
        "GEMGATE_POSTGRES_DSN": "postgresql://gemgate:pw@postgres:5432/gemgate"}, dotenv=None)
    assert settings.state.backend == "redis" and settings.state.replicas == 2
    assert settings.store.backend == "postgres" and settings.store.spool_path.startswith("/")
