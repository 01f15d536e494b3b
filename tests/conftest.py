"""Shared fixtures: named actors (healthchecks style) and real Celery worker processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def actors(db):
    """alice and bob share team "acme" (alice is its admin); charlie is in team "other" only."""
    from django.contrib.auth import get_user_model

    from lts_web.models import Membership
    from lts_web.services import do_add_member, do_create_team

    User = get_user_model()
    alice = User.objects.create_user("alice", password="alice-password-1")
    bob = User.objects.create_user("bob", password="bob-password-1")
    charlie = User.objects.create_user("charlie", password="charlie-password-1")
    acme = do_create_team("acme", alice)
    do_add_member(acme, bob, Membership.Role.MEMBER)
    other = do_create_team("other", charlie)
    return type("Actors", (), dict(alice=alice, bob=bob, charlie=charlie, acme=acme, other=other))


class Outbox(list):
    """Messages the services sent through lts_web.queueing: dicts of the task's name, its args and Celery's options.
    Tasks named in ``run`` are also executed at once by their real task, in this process (Celery's eager apply)."""

    def __init__(self) -> None:
        super().__init__()
        self.run: set[str] = set()

    def publish(self, name: str, args=(), **options) -> None:
        self.append({"name": name, "args": list(args), **options})
        if name in self.run:
            from unittest import mock

            from lts_web.celery import app

            app.loader.import_default_modules()  # the task modules, as a worker imports them
            task = app.tasks[name]
            # The test's connection holds its transaction: a task's close_old_connections() must keep it.
            with mock.patch.object(sys.modules[task.run.__module__], "close_old_connections", lambda: None):
                task.apply(args=list(args), throw=True)

    def named(self, name: str) -> list[dict]:
        return [message for message in self if message["name"] == name]


@pytest.fixture
def outbox(monkeypatch) -> Outbox:
    """Record what the services send instead of publishing it (lts_web.queueing.publish). Messages sent on commit
    leave only if the test's transaction commits: patch transaction.on_commit, or use
    django_capture_on_commit_callbacks(execute=True), to see them."""
    from lts_web import queueing

    box = Outbox()
    monkeypatch.setattr(queueing, "publish", box.publish)
    return box


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


class WorkerProcess:
    """A real `celery worker` (or, with beat=True, `celery beat`) subprocess pointed at the test broker and
    database."""

    def __init__(self, queues: list[str], *, env: dict[str, str] | None = None, concurrency: int = 1,
                 beat: bool = False):
        self.queues = queues
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        full_env = {**os.environ, **(env or {})}
        from django.conf import settings

        db = settings.DATABASES["default"]
        if db["ENGINE"].endswith("sqlite3"):
            full_env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"  # the test database file, not the dev one
        else:
            full_env["DATABASE_URL"] = (
                f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
            )
        self.log = Path(os.environ["LTS_VAR_DIR"]) / f"worker-{uuid.uuid4().hex[:8]}.log"
        self._log_file = open(self.log, "wb")
        if beat:
            schedule = Path(os.environ["LTS_VAR_DIR"]) / f"beat-{uuid.uuid4().hex[:8]}"
            args = ["beat", "-l", "INFO", "-s", str(schedule)]
        else:
            args = ["worker", "-n", self.name, "-Q", ",".join(queues), "--pool", "prefork", "--concurrency",
                    str(concurrency), "-l", "INFO", "--without-gossip", "--without-mingle"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "lts_web", *args],
            cwd=ROOT, env=full_env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


@pytest.fixture
def start_worker():
    """Start real worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def _start(queues: list[str], **kwargs) -> WorkerProcess:
        worker = WorkerProcess(queues, **kwargs)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {message}")


def wait_finished(row, timeout_s: float, *workers, interval_s: float = 0.3):
    """Poll a row with a FINISHED set of statuses (a search, a training run) until it reaches one; on a timeout the
    workers' logs are printed before the failure."""
    def finished():
        row.refresh_from_db()
        return row.status in type(row).FINISHED
    try:
        wait_for(finished, timeout_s, interval_s=interval_s, message=f"{type(row).__name__} {row.pk} to finish")
    except AssertionError:
        for worker in workers:
            print(worker.output()[-4000:])
        raise
    return row


@pytest.fixture(autouse=True)
def _empty_cache():
    """Database ids repeat between tests (rolled back): a cached frontier of one test must not leak into another."""
    from django.core.cache import cache

    cache.clear()
    yield
