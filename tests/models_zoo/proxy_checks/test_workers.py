"""End to end with K=3: lts_proxy_check submits through the service, a real Celery worker trains the three models on
the "train" queue from text this test wrote, the command follows with its progress bar and prints the result; the
three models are in the zoo. And the same check in-process with --local."""
from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from models_zoo.models import ZooModel
from models_zoo.proxy_checks.models import ProxyCheck
from tests.models_zoo.proxy_checks.conftest import TINY_CONFIG, TINY_SPACE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"LTS_HEARTBEAT_S": "1", "LTS_DEVICE_OFFLINE_AFTER_S": "4", "LTS_TRAIN_PROGRESS_S": "0", "OMP_NUM_THREADS": "1"}
ARGS = ["--space", json.dumps(TINY_SPACE), "--tokenizer", "bpe:300", "-k", "3", "--max-tokens", "2048",
        "--config", json.dumps(TINY_CONFIG), "--user", "alice"]


def _check_result(out: str, tmp_path) -> ProxyCheck:
    check = ProxyCheck.objects.get()
    assert check.status == "completed", out
    budget = check.result["budgets"][0]
    assert budget["n"] == 3 and budget["failed"] == 0
    assert budget["predictors"]["proxy"]["spearman"]["estimate"] is not None
    assert "after 2,048 tokens per model: 3 models" in out and "non-embedding parameters (the LTS proxy)" in out
    assert "Short-run ranking after 2,048 tokens per model, 3 models" in out
    assert "[####################]  3/3 runs trained" in out
    models = ZooModel.objects.filter(training_run__proxy_check_member__proxy_check=check)
    assert models.count() == 3 and all(m.val_ppl for m in models)
    saved = json.loads((tmp_path / "check.json").read_text())
    assert saved["result"]["budgets"][0]["n"] == 3 and len(saved["models"]) == 3
    return check


def test_a_k3_check_trains_on_a_worker_and_reports(start_worker, actors, corpus, roots, tmp_path):
    data, artifacts = roots
    # "control": the check's updates, sent as its runs finish (the command only reads the check)
    worker = start_worker(["train", "control"],
                          env={**FAST, "LTS_DATA_ROOT": str(data), "LTS_ARTIFACT_ROOT": str(artifacts)})
    out = io.StringIO()
    try:
        call_command("lts_proxy_check", *ARGS, "--data", corpus, "--timeout", "180", "--json",
                     str(tmp_path / "check.json"), stdout=out)
    except BaseException:
        print(out.getvalue(), worker.output()[-4000:])
        raise
    check = _check_result(out.getvalue(), tmp_path)
    assert all(m.run.claimed_by.startswith("test-") for m in check.members.select_related("run"))  # the worker's


def test_the_same_check_runs_in_process_with_local(actors, corpus, roots, tmp_path, one_thread):
    out = io.StringIO()
    call_command("lts_proxy_check", *ARGS, "--data", corpus, "--local", "--json", str(tmp_path / "check.json"),
                 stdout=out)
    check = _check_result(out.getvalue(), tmp_path)
    assert all(m.run.claimed_by.startswith("local:") for m in check.members.select_related("run"))
