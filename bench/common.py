"""Helpers shared by the bench scripts: a free port, gunicorn started and stopped, a line describing the machine, a
fresh PostgreSQL database, waiting for a quiet machine."""
from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.2f}")


def fresh_postgres(url: str, name: str) -> str:
    """Drop and re-create database `name` on the server of `url`; returns its URL."""
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(parts._replace(path=f"/{name}"))


def start_gunicorn(port: int, env: dict[str, str], *, workers: int, threads: int) -> subprocess.Popen:
    """lts_web on 127.0.0.1:port (gthread), in a process group of its own; returns once it accepts connections."""
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "lts_web.wsgi", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop(server)
                raise RuntimeError(f"gunicorn did not start on port {port}") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM to the process group a bench script started, then wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout_s)


def busy_cores(seconds: float) -> float:
    """Cores busy (all processes) over the next ``seconds``, from /proc/stat."""
    def ticks() -> list[int]:
        with open("/proc/stat") as fh:
            return [int(v) for v in fh.readline().split()[1:]]

    before = ticks()
    time.sleep(seconds)
    delta = [b - a for a, b in zip(before, ticks())]
    return (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / os.sysconf("SC_CLK_TCK") / seconds


def wait_quiet(below: float, max_wait_s: float) -> float:
    """Wait until the machine is quiet (busy cores < below over 1 s); return the seconds waited."""
    start = time.monotonic()
    while busy_cores(1.0) >= below and time.monotonic() - start < max_wait_s:
        pass
    return time.monotonic() - start
