"""No Docker engine runs here: check docker-compose.yml and the Dockerfile for consistency instead."""
from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = {"web", "worker", "generator", "profiler", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _command(service: dict) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_services_and_one_image(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis"} | APP_SERVICES
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, "every role runs the same image"
    for name in APP_SERVICES:
        assert services[name]["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and "FROM python:3.11" in dockerfile


def test_app_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    for dependency in ("postgres", "redis", "web"):
        assert services[dependency]["healthcheck"]["test"], dependency
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends == {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}


def test_urls_point_at_the_services(compose):
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        db = urlparse(env["DATABASE_URL"])
        assert db.hostname == "postgres" and db.username == postgres["POSTGRES_USER"]
        assert db.password == postgres["POSTGRES_PASSWORD"] and db.path.lstrip("/") == postgres["POSTGRES_DB"]
        assert urlparse(env["REDIS_URL"]).hostname == "redis"
        assert env["DEBUG"] == "0" and env["SECRET_KEY_FILE"].startswith("/run/secrets/")


def test_workers_consume_the_configured_queues(compose, settings):
    services = compose["services"]
    web = _command(services["web"])
    assert "gunicorn lts_web.wsgi" in " ".join(web) and "migrate" in " ".join(web)
    consumed = set()
    for name in ("worker", "generator"):
        worker = _command(services[name])
        assert worker[:4] == ["celery", "-A", "lts_web", "worker"]
        consumed |= set(_option(worker, "-Q").split(","))
    assert consumed == set(settings.LTS_QUEUES)
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed == set(settings.LTS_QUEUES), "a queue nothing is routed to, or one no worker consumes"
    assert _option(_command(services["generator"]), "-Q") == "generate", "training never holds generation up"
    profiler = _command(services["profiler"])
    device = services["profiler"]["environment"]["LTS_DEVICE"]
    assert _option(profiler, "-Q") == f"profile.{device}"
    assert _option(profiler, "--concurrency") == "1", "timings must not compete"
    assert _command(services["beat"])[:4] == ["celery", "-A", "lts_web", "beat"]


def test_volumes_are_shared_and_declared(compose):
    services = compose["services"]
    declared = set(compose["volumes"])
    for name in ("web", "worker", "profiler"):
        mounts = dict(v.split(":", 1) for v in services[name]["volumes"])
        assert mounts["artifacts"] == services[name]["environment"]["LTS_ARTIFACT_ROOT"]
        assert mounts["data"] == services[name]["environment"]["LTS_DATA_ROOT"]
    used = {v.split(":", 1)[0] for s in services.values() for v in s.get("volumes", [])}
    assert used <= declared
    assert set(compose["secrets"]) >= {s for svc in services.values() for s in svc.get("secrets", [])}


def test_compose_environment_passes_the_deploy_check(compose, tmp_path):
    # Compose interpolation with nothing set: ${NAME:-default} -> default.
    env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in compose["services"]["web"]["environment"].items()}
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(64))
    env["SECRET_KEY_FILE"] = str(secret)
    env["LTS_DATA_ROOT"], env["LTS_ARTIFACT_ROOT"] = str(tmp_path / "data"), str(tmp_path / "artifacts")
    env["LTS_VAR_DIR"] = str(tmp_path / "var")
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
