"""`make run`: the whole system on one machine, from one terminal.

Starts (unless REDIS_URL is set) an embedded Redis, then migrates, makes sure the demo user exists, and runs a
Celery worker for the control and train queues, one for the generate queue, a profiling worker for this machine's device queue,
Celery beat and the web server (gunicorn). A process that dies is started again (with a growing pause if it keeps
dying) while the others run on; Ctrl-C stops every process it started. With DATABASE_URL / REDIS_URL set it uses those
instead (Postgres, a real Redis). DEBUG is off unless the environment sets DEBUG=1: the secret key is made once into
var/secret_key, and the site runs over plain HTTP on this machine (LTS_LOCAL_HTTP).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Own session: Ctrl-C goes to this supervisor only, which then stops the children in order.
    return subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True)


@dataclass(frozen=True)
class RestartPolicy:
    """How long a dead child waits before it is started again: 1 s after its first death, doubling with each death
    in a row up to 30 s; a child that stayed up 60 s starts over at 1 s. A worker killed once (out of memory,
    `kill -9`) is back within a second; one that dies at every start (a bad setting, a port in use) is tried twice a
    minute instead of filling the terminal in a tight loop."""

    first_s: float = 1.0
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, restart: int) -> float:
        """The pause before restart number ``restart`` (1, 2, ... deaths in a row)."""
        return min(self.max_s, self.first_s * 2 ** (restart - 1))


@dataclass
class _Child:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen
    started_at: float
    restarts: int = 0  # deaths in a row (reset once it has stayed up RestartPolicy.stable_s)
    due: float | None = None  # when a dead child is started again


class Supervisor:
    """The process table of `make run`: starts each child, notices one that died, starts it again after the policy's
    pause. ``spawn`` and ``clock`` are injectable for tests."""

    def __init__(self, policy: RestartPolicy = RestartPolicy(),
                 spawn: Callable[[list[str], dict[str, str]], subprocess.Popen] = _spawn,
                 clock: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None):
        self.policy, self._spawn, self._clock = policy, spawn, clock
        self._log = log or (lambda line: print(line, flush=True))
        self.children: list[_Child] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.children.append(_Child(name, args, env, self._spawn(args, env), self._clock()))

    def procs(self) -> list[tuple[str, subprocess.Popen]]:
        return [(c.name, c.proc) for c in self.children]

    def check(self) -> None:
        """One look at every child: schedule the restart of one that died, start one whose pause is over."""
        now = self._clock()
        for c in self.children:
            if c.due is None:
                if c.proc.poll() is None:
                    continue
                if now - c.started_at >= self.policy.stable_s:
                    c.restarts = 0  # it had been fine for a while: this death is a new story
                c.restarts += 1
                _kill_group(c.proc)
                delay = self.policy.delay(c.restarts)
                c.due = now + delay
                self._log(f"[lts] {c.name} exited with code {c.proc.returncode}; restarting in {delay:g} s "
                          f"(restart {c.restarts})")
            elif now >= c.due:
                c.proc, c.started_at, c.due = self._spawn(c.args, c.env), now, None
                self._log(f"[lts] {c.name} restarted (pid {c.proc.pid})")


def _kill_group(proc: subprocess.Popen) -> None:
    """What is left of a dead child's process group: the pool processes of a SIGKILLed Celery worker would otherwise
    run on, orphaned, beside their restarted twin."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def supervise(children: list[tuple[str, list[str], dict[str, str]]], *, policy: RestartPolicy = RestartPolicy(),
              interval_s: float = 0.5, on_started: Callable[[], None] | None = None) -> int:
    """Start ``children`` (name, argv, environment) and keep them running until Ctrl-C or SIGTERM (which
    _interrupt turns into KeyboardInterrupt); then stop them all, in order. Returns the exit code."""
    supervisor = Supervisor(policy)
    try:
        for name, args, env in children:
            supervisor.start(name, args, env)
        if on_started is not None:
            on_started()
        while True:
            time.sleep(interval_s)
            supervisor.check()
    except KeyboardInterrupt:
        print("\n[lts] stopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(supervisor.procs())


def _stop(procs: list[tuple[str, subprocess.Popen]], timeout_s: float = 15.0) -> None:
    for _, proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for name, proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"[lts] {name} did not stop in {timeout_s:.0f} s; killing it", flush=True)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _write_stack_env(var_dir: Path, env: dict[str, str]) -> Path:
    """var/stack.env: what `manage.py` in another terminal needs to reach this stack (its embedded Redis has a port of
    its own); manage.py reads it while this process lives. Owner-only: DATABASE_URL may hold a password."""
    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "stack.env"
    keys = ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "LTS_LOCAL_HTTP", "ALLOWED_HOSTS", "REDIS_URL", "DATABASE_URL",
            "LTS_DEVICE", "LTS_VAR_DIR")
    lines = [f"LTS_STACK_PID={os.getpid()}", *(f"{k}={env[k]}" for k in keys if env.get(k))]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _secret_key_file(var_dir: Path) -> Path:
    """var/secret_key: made on the first run (owner-only), then reused, so that sessions survive a restart."""
    path = var_dir / "secret_key"
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(64) + "\n")  # 86 characters; settings want at least 50
    return path


def _local_env(env: dict[str, str], var_dir: Path, host: str) -> None:
    """DEBUG off unless asked for (DEBUG=1): a generated secret key, the addresses this stack answers on, and plain
    HTTP (no HTTPS redirect, secure-only cookies or HSTS; settings.LTS_LOCAL_HTTP). What the environment sets wins."""
    env.setdefault("LTS_LOCAL_HTTP", "1")
    if not env.get("SECRET_KEY") and not env.get("SECRET_KEY_FILE"):
        env["SECRET_KEY_FILE"] = str(_secret_key_file(var_dir))
    if "ALLOWED_HOSTS" not in env:
        hosts = ["127.0.0.1", "localhost", "[::1]"]
        if host not in ("0.0.0.0", "::", *hosts):  # a wildcard bind: name the machine's addresses in ALLOWED_HOSTS
            hosts.append(f"[{host}]" if ":" in host else host)
        env["ALLOWED_HOSTS"] = ",".join(hosts)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C, and SIGTERM (a service manager, `kill`), stop everything in order; SIGINT is set explicitly because a
    # shell's background job starts with it ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("LTS_DEVICE", "local")
    host, port = env.get("LTS_HOST", "127.0.0.1"), env.get("LTS_PORT", "8000")
    env.setdefault("LTS_PUBLIC_URL", f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}")  # webhook links
    var_dir = Path(env.get("LTS_VAR_DIR") or ROOT / "var")
    _local_env(env, var_dir, host)
    redis = None
    if not env.get("REDIS_URL"):
        redis = EmbeddedRedis().start()
        env["REDIS_URL"] = redis.url
        print(f"[lts] embedded Redis on {redis.url}", flush=True)
    database = env.get("DATABASE_URL") or f"SQLite in {var_dir / 'db.sqlite3'}"
    print(f"[lts] database: {database}", flush=True)
    stack_env = _write_stack_env(var_dir, env)

    python = str(BIN / "python")
    manage = [python, str(ROOT / "manage.py")]
    try:
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "lts_demo_user"], cwd=ROOT, env=env, check=True)
        celery = [str(BIN / "celery"), "-A", "lts_web"]
        device = env["LTS_DEVICE"]
        # Its own worker, so that a long training task never holds a generation up: three processes (three models
        # side by side), each keeping its recently used models loaded, sharing the cores between them.
        generate_env = {"LTS_GENERATE_THREADS": str(max(1, (os.cpu_count() or 1) // 3)), **env}
        children = [
            ("worker", [*celery, "worker", "-n", "main@%h", "-Q", "control,train", "--concurrency", "2",
                        "-l", "INFO"], env),
            ("generator", [*celery, "worker", "-n", "generate@%h", "-Q", "generate", "--concurrency", "3",
                           "-l", "INFO"], generate_env),
            ("profiler", [*celery, "worker", "-n", f"profile-{device}@%h", "-Q", f"profile.{device}",
                          "--concurrency", "1", "-l", "INFO"], env),
            ("beat", [*celery, "beat", "-l", "INFO"], env),
            ("web", [str(BIN / "gunicorn"), "lts_web.wsgi", "--bind", f"{host}:{port}", "--worker-class", "gthread",
                     "--workers", "2", "--threads", "8", "--access-logfile", "-"], env),
        ]
        url = f"http://{host}:{port}/"

        def started() -> None:
            print(f"[lts] LTS Studio: {url}  (Ctrl-C stops everything)", flush=True)
            if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
                webbrowser.open(url)

        return supervise(children, on_started=started)
    except KeyboardInterrupt:  # during the migration
        print("\n[lts] stopping...", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"[lts] {' '.join(exc.cmd[1:3])} failed with code {exc.returncode}", flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if redis:
            redis.stop()
        stack_env.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
