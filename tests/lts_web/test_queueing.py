"""lts_web.queueing, the one module that sends work: every task name is a task the workers register (through
CELERY_IMPORTS), routed to its queue; messages leave after the commit; a best-effort message never fails its caller;
and sending work loads no worker module."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from lts_web import queueing
from lts_web.celery import app
from tests.conftest import ROOT


@pytest.fixture
def published(monkeypatch) -> list[tuple[str, list, dict]]:
    messages: list[tuple[str, list, dict]] = []
    monkeypatch.setattr(queueing, "publish", lambda name, args=(), **options: messages.append((name, list(args),
                                                                                               options)))
    return messages


def test_every_task_name_is_a_task_the_workers_register():
    app.loader.import_default_modules()  # what a worker does at start: settings.CELERY_IMPORTS
    registered = {name for name in app.tasks if not name.startswith("celery.")}
    assert set(queueing.TASK_NAMES) == registered
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(queueing.TASK_NAMES)


@pytest.mark.parametrize("name, queue", [
    (queueing.ADVANCE_SEARCH, "control"), (queueing.REFIT_COST_MODEL, "control"), (queueing.TRAIN_MODEL, "train"),
    (queueing.REAP_TRAINING, "control"), (queueing.GENERATE_TEXT, "generate"), (queueing.UPDATE_PROXY_CHECK, "control"),
])
def test_a_task_sent_without_a_queue_goes_to_its_routed_queue(name, queue):
    assert app.amqp.router.route({}, name)["queue"].name == queue


def test_the_web_side_loads_no_worker_module():
    """Sending work imports neither a task module nor, for the searches, torch."""
    code = ("import os, sys, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'lts_web.settings'; django.setup()\n"
            "import searches.api, searches.views, searches.services\n"
            "loaded = {m.split('.')[0] for m in sys.modules}\n"
            "import models_zoo.api, models_zoo.views, models_zoo.generation, models_zoo.proxy_checks.api\n"
            "print(json.dumps([sorted(loaded & {'workers', 'torch'}), "
            "sorted(m for m in sys.modules if m.split('.')[0] == 'workers')]))")
    out = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DEBUG": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[], []]


@pytest.mark.django_db
def test_a_message_leaves_after_the_commit_with_its_options(published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queueing.send(queueing.TRAIN_MODEL, [7], queue="train", task_id="t-1")
        assert published == []  # not before the commit: a worker would not find the row
    assert len(callbacks) == 1
    assert published == [(queueing.TRAIN_MODEL, [7], {"queue": "train", "task_id": "t-1"})]
    queueing.send(queueing.GENERATE_TEXT, ["r"], on_commit=False, expires=30.0)
    assert published[-1] == (queueing.GENERATE_TEXT, ["r"], {"expires": 30.0})


def test_a_best_effort_message_that_cannot_be_sent_is_logged_not_raised(monkeypatch, caplog):
    options_seen = []

    def unreachable(name, args=(), **options):
        options_seen.append(options)
        raise ConnectionError("no broker")

    monkeypatch.setattr(queueing, "publish", unreachable)
    queueing.send(queueing.UPDATE_PROXY_CHECK, [3], on_commit=False, best_effort=True)
    assert "could not queue workers.proxy_checks.update_proxy_check [3]" in caplog.text
    assert options_seen == [{"retry": False}]  # no retry loop holding the caller
    with pytest.raises(ConnectionError):
        queueing.send(queueing.TRAIN_MODEL, [3], on_commit=False)


def test_queue_lengths_are_none_when_the_broker_cannot_be_asked(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert queueing.queue_lengths(["train", "control"]) == {"train": None, "control": None}
