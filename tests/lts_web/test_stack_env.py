"""manage.py in another terminal reaches a running `make run` through var/stack.env, and ignores one left behind."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

PRINT = "from django.conf import settings; print(settings.CELERY_BROKER_URL, settings.DEBUG)"


def _manage(var_dir, env_file_pid: int) -> str:
    (var_dir / "stack.env").write_text(f"LTS_STACK_PID={env_file_pid}\nDEBUG=1\nREDIS_URL=redis://127.0.0.1:1/0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "REDIS_URL", "CELERY_BROKER_URL")}
    env["LTS_VAR_DIR"] = str(var_dir)
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", PRINT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.stdout + done.stderr


def test_a_running_stacks_addresses_are_used(tmp_path):
    assert "redis://127.0.0.1:1/0 True" in _manage(tmp_path, os.getpid())  # this test process stands for the stack


def test_a_file_left_by_a_dead_stack_is_ignored(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "SECRET_KEY (or SECRET_KEY_FILE) is required" in _manage(tmp_path, dead.pid)


LOCAL = ("from django.conf import settings; from django.test import Client; c = Client(HTTP_HOST='localhost'); "
         "print(settings.DEBUG, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, "
         "settings.SECURE_HSTS_SECONDS, "
         "c.get('/static/lts_web/style.css').status_code, c.get('/no/such/page/').status_code, "
         "'URLconf' in c.get('/no/such/page/').content.decode())")


def test_the_stack_runs_with_debug_off_and_a_key_of_its_own(tmp_path):
    """make run: no DEBUG unless asked, a secret key made once (owner-only) and reused, plain HTTP on this machine with
    static files served; manage.py in another terminal gets the same settings through var/stack.env."""
    from workers.stack import _local_env, _write_stack_env

    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "ALLOWED_HOSTS")}
    _local_env(env, tmp_path, "127.0.0.1")
    key_file = tmp_path / "secret_key"
    assert env["SECRET_KEY_FILE"] == str(key_file) and "DEBUG" not in env
    assert key_file.stat().st_mode & 0o777 == 0o600 and len(key_file.read_text().strip()) >= 50
    key = key_file.read_text()
    _local_env({}, tmp_path, "127.0.0.1")
    assert key_file.read_text() == key  # reused
    assert env["ALLOWED_HOSTS"] == "127.0.0.1,localhost,[::1]"
    _write_stack_env(tmp_path, env)
    # another terminal: nothing but LTS_VAR_DIR set
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DEBUG", "REDIS_URL", "SECRET_KEY", "SECRET_KEY_FILE", "LTS_LOCAL_HTTP", "ALLOWED_HOSTS")}
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", LOCAL], cwd=ROOT,
                          env={**clean, "LTS_VAR_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert "False False False 0 200 404 False" in done.stdout, done.stdout + done.stderr


def test_without_the_stack_debug_off_keeps_https_hardening(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY_FILE", "LTS_LOCAL_HTTP")}
    env.update(DEBUG="0", SECRET_KEY="p" * 60, LTS_VAR_DIR=str(tmp_path))  # no stack.env there
    code = ("from django.conf import settings; print(settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, "
            "settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS)")
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert "True True True 31536000" in done.stdout, done.stdout + done.stderr
