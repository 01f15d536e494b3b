from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lts_web import env

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 20 + "-production-secret-key-for-tests-0123456789"


def _django_check(extra_env: dict[str, str], *args: str, command: str = "check") -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", command, *args], cwd=ROOT, env={**base, **extra_env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    "helper, name, value, message",
    [
        (lambda: env.envbool("X_BOOL"), "X_BOOL", "maybe", "is not a boolean"),
        (lambda: env.envint("X_INT", 1), "X_INT", "ten", "is not an integer"),
        (lambda: env.envint("X_INT", 1, minimum=1), "X_INT", "0", "below the minimum"),
        (lambda: env.envfloat("X_FLOAT", 1.0), "X_FLOAT", "fast", "is not a number"),
        (lambda: env.envpath("X_PATH", Path("/tmp")), "X_PATH", "relative/dir", "must be an absolute path"),
        (lambda: env.envrate("X_RATE", "1/min"), "X_RATE", "100 per hour", "is not a rate"),
        (lambda: env.envrate("X_RATE", "1/min"), "X_RATE", "0/min", "is not a rate"),
    ],
)
def test_typed_helpers_reject_bad_values(monkeypatch, helper, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_typed_helpers_parse_good_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_INT", " 42 ")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env.envbool("X_BOOL") is True
    assert env.envint("X_INT", 1) == 42
    assert env.envlist("X_LIST", []) == ["a.example", "b.example"]
    assert env.envbool("X_UNSET", True) is True
    monkeypatch.setenv("X_RATE", " 30 / hour ")
    assert env.envrate("X_RATE", "1/min") == "30/hour"


def test_secret_from_file_and_conflict(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env.envsecret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET", "other")
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env.envsecret("X_SECRET")
    monkeypatch.delenv("X_SECRET")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env.envsecret("X_SECRET")


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"DEBUG": "0"}, "SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "at least 50 characters"),
        ({"DEBUG": "perhaps"}, "DEBUG='perhaps' is not a boolean"),
        ({"DEBUG": "1", "DATABASE_URL": "nosuchdb://x"}, "is not a valid database URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://127.0.0.1:6379"}, "must be a redis://"),
        ({"DEBUG": "1", "LTS_MAX_TASK_SECONDS": "5"}, "below the minimum 60"),
    ],
)
def test_bad_settings_fail_loudly_at_start(extra, message):
    result = _django_check(extra)
    assert result.returncode != 0
    # One line that says what to set, not a traceback.
    assert result.stderr.startswith("manage.py: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["makemigrations", "migrate", "shell"])
def test_every_command_says_which_setting_is_wrong(command):
    # Django swallows a settings error for some commands and fails later with AppRegistryNotReady; manage.py reads
    # the settings first, so each command gives the setting's own one-line message.
    args = ("-c", "pass") if command == "shell" else ("--check",)
    result = _django_check({"DEBUG": "0"}, *args, command=command)
    assert result.returncode != 0
    assert result.stderr.startswith("manage.py: ") and "SECRET_KEY (or SECRET_KEY_FILE) is required" in result.stderr
    assert "AppRegistryNotReady" not in result.stderr and "Traceback" not in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    result = _django_check(
        {"DEBUG": "0", "SECRET_KEY": GOOD_KEY, "ALLOWED_HOSTS": "lts.example.org"}, "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("name, value, message", [
    ("LTS_PUBLIC_URL", "lts.example.org", "must start with http:// or https://"),
    ("LTS_WEBHOOK_TIMEOUT_S", "120", "above the maximum 60"),
    ("LTS_WEBHOOK_MAX_ATTEMPTS", "21", "above the maximum 20"),
    ("LTS_WEBHOOK_RESEND_AFTER_S", "59", "below the minimum 60"),
    ("LTS_WEBHOOK_MAX_RESENDS", "51", "above the maximum 50"),
])
def test_webhook_settings_are_bounded(name, value, message):
    result = _django_check({"DEBUG": "1", name: value})
    assert result.returncode != 0 and message in result.stderr


def test_a_delivery_is_not_sent_again_while_an_attempt_may_still_run():
    result = _django_check({"DEBUG": "1", "LTS_WEBHOOK_TIMEOUT_S": "60", "LTS_WEBHOOK_RESEND_AFTER_S": "200"})
    assert result.returncode != 0 and "LTS_WEBHOOK_RESEND_AFTER_S=200 is below 270" in result.stderr
