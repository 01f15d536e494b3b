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


# Every host probe of this process (ms): host_probe_ms() appends, host_probe_line() summarizes.
HOST_PROBES: list[float] = []


def host_probe_ms() -> float:
    """A fixed piece of single-threaded pure-Python work, median of 5 timings, in ms (~2 ms each at full speed).

    It follows the slow phases of a shared virtual machine's host (other guests; no process here shows them and no
    steal time is reported), as the profiler's own probe does (searches/core/profiling/host_speed.py).
    """
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        total = 0
        for i in range(20_000):
            total += i * i
        samples.append(time.perf_counter() - start)
    HOST_PROBES.append(sorted(samples)[2] * 1e3)
    return HOST_PROBES[-1]


def host_probe_line() -> str:
    if not HOST_PROBES:
        return "no host probe"
    ordered = sorted(HOST_PROBES)
    return (f"host probe (bench/common.py host_probe_ms) fastest {ordered[0]:.2f} ms, "
            f"median {ordered[len(ordered) // 2]:.2f} ms, "
            f"slowest {ordered[-1]:.2f} ms over {len(ordered)} probes")


def wait_quiet(below: float, max_wait_s: float, *, fast_host: float | None = None) -> float:
    """Wait until the machine is quiet (busy cores < below over 1 s) and, with ``fast_host`` (a fraction, 0.1 = 10%),
    until a host probe is within that of the fastest this process has seen; at most max_wait_s in all. Returns the
    seconds waited."""
    start = time.monotonic()
    if fast_host is not None and not HOST_PROBES:
        for _ in range(5):
            host_probe_ms()
    while time.monotonic() - start < max_wait_s:
        if busy_cores(1.0) >= below:
            continue
        if fast_host is None or host_probe_ms() <= min(HOST_PROBES) * (1 + fast_host):
            break
    return time.monotonic() - start


def setup_django(env: dict[str, str]) -> None:
    """Django for a bench script that reads and writes the database in-process, with ``env`` added to os.environ."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
    import django

    django.setup()
