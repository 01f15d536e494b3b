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
