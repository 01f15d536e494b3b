"""`make run`'s supervisor (workers/stack.py): a child that dies is started again after a growing pause while the
others keep running; Ctrl-C / SIGTERM still stops them all."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import wait_for
from workers import stack
from workers.stack import RestartPolicy, Supervisor


def test_the_pause_doubles_from_one_second_up_to_thirty():
    assert [RestartPolicy().delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


class _FakeProc:
    pids = iter(range(10_000, 20_000))

    def __init__(self):
        self.pid, self.returncode = next(self.pids), None

    def poll(self):
        return self.returncode


def test_a_dead_child_waits_its_pause_then_starts_again_and_a_stable_one_starts_over(monkeypatch):
    monkeypatch.setattr(stack, "_kill_group", lambda proc: killed.append(proc.pid))
    killed: list[int] = []
    now, lines = [0.0], []
    supervisor = Supervisor(RestartPolicy(), spawn=lambda args, env: _FakeProc(), clock=lambda: now[0],
                            log=lines.append)
    supervisor.start("worker", ["celery"], {})
    supervisor.start("web", ["gunicorn"], {})
    worker, web = (c.proc for c in supervisor.children)

    def die_and_restart(after_s: float) -> float:
        """Kill the worker at now + after_s; return the pause it got."""
        dead = supervisor.children[0].proc
        now[0] += after_s
        dead.returncode = -9
        supervisor.check()
        assert killed[-1] == dead.pid  # leftovers of its process group go with it
        pause = supervisor.children[0].due - now[0]
        now[0] += pause - 0.01
        supervisor.check()
        assert supervisor.children[0].proc is dead  # not before the pause is over
        now[0] += 0.01
        supervisor.check()
        assert supervisor.children[0].proc is not dead
        return pause

    assert [die_and_restart(5) for _ in range(3)] == [1, 2, 4]  # deaths in a row: 1 s, 2 s, 4 s
    assert lines[-2] == "[lts] worker exited with code -9; restarting in 4 s (restart 3)"
    assert lines[-1] == f"[lts] worker restarted (pid {supervisor.children[0].proc.pid})"
    assert die_and_restart(60) == 1  # up for a minute: the next death starts over at 1 s
    assert supervisor.children[1].proc is web and web.pid not in killed


_SCRIPT = textwrap.dedent("""
    import signal, sys
    from workers.stack import RestartPolicy, _interrupt, supervise

    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    record = sys.argv[1]
    child = lambda name: (name, ["sh", "-c", f'echo "{name} $$" >> {record}; exec sleep 60'], {})
    sys.exit(supervise([child("worker"), child("web")], policy=RestartPolicy(first_s=0.2), interval_s=0.05))
""")


def _alive(pid: int) -> bool:
    try:  # a zombie (exited, not yet waited for by the supervisor) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_sigkilled_child_of_a_real_supervisor_is_restarted_and_ctrl_c_stops_all(tmp_path, stop_signal):
    record = tmp_path / "pids"
    supervisor = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(record)], cwd=stack.ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def started() -> dict[str, list[int]]:
            lines = record.read_text().split("\n") if record.exists() else []
            pids: dict[str, list[int]] = {}
            for line in filter(None, lines):
                name, pid = line.split()
                pids.setdefault(name, []).append(int(pid))
            return pids

        first = wait_for(lambda: (p := started()) and len(p) == 2 and p, 10, 0.05, "both children to start")
        os.kill(first["worker"][0], signal.SIGKILL)
        again = wait_for(lambda: len(started()["worker"]) == 2 and started(), 10, 0.05, "the worker's restart")
        assert again["web"] == first["web"] and _alive(first["web"][0])  # the web server kept running
        assert _alive(again["worker"][1])
        supervisor.send_signal(stop_signal)
        output, _ = supervisor.communicate(timeout=20)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output
    assert "[lts] worker exited with code -9; restarting in 0.2 s (restart 1)" in output
    assert "[lts] stopping..." in output
    assert not any(_alive(pid) for pid in (again["worker"][1], again["web"][0]))


def test_the_readme_quotes_the_line_make_run_prints_when_the_page_answers(monkeypatch, tmp_path, capsys):
    """The README tells a new user which line to wait for: it must be the line main() prints."""
    import re

    readme = (stack.ROOT / "README.md").read_text()
    quoted = re.search(r"the line `([^`]+)` appears", readme)
    assert quoted, "the README names the line to wait for"
    for key in ("LTS_HOST", "LTS_PORT", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LTS_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # no embedded Redis
    monkeypatch.setattr(stack.signal, "signal", lambda *args: None)
    monkeypatch.setattr(stack.subprocess, "run", lambda *args, **kwargs: None)  # migrate, the demo user
    monkeypatch.setattr(stack, "supervise", lambda children, on_started: on_started() or 0)
    assert stack.main() == 0
    assert quoted.group(1) in capsys.readouterr().out.splitlines()
