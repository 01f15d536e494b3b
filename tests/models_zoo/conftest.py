"""Fixtures of the model-zoo web tests: confined data and artifact roots in tmp dirs, a corpus written under the data
root, a 2-layer 32-wide architecture, training settings that finish in a second, and a GPT-2 checkpoint folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.models_zoo.core.conftest import write_corpus

TINY_ARCH = {"n_layer": 2, "d_model": 32, "d_inner": 64, "n_head": 2, "max_sequence_length": 64}
# 30 steps of 8 x 32 tokens, evaluation and checkpoint every 10, a report every step (tests/models_zoo/core: a
# 32-wide model's loss falls clearly within 40 steps at lr 3e-3).
FAST_CONFIG = {"max_steps": 30, "seq_len": 32, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 4,
               "eval_interval": 10, "eval_batches": 4, "checkpoint_interval": 10, "log_interval": 1}


@pytest.fixture
def roots(settings, tmp_path) -> tuple[Path, Path]:
    """LTS_DATA_ROOT and LTS_ARTIFACT_ROOT in this test's tmp dir (pass them to worker processes as env)."""
    data, artifacts = tmp_path / "data", tmp_path / "artifacts"
    data.mkdir()
    artifacts.mkdir()
    settings.LTS_DATA_ROOT = data
    settings.LTS_ARTIFACT_ROOT = artifacts
    settings.LTS_TRAIN_PROGRESS_S = 0.0
    return data, artifacts


@pytest.fixture
def corpus(roots) -> str:
    """A text file under the data root; returns its path relative to the root."""
    data, _ = roots
    (data / "corpora").mkdir()
    write_corpus(data / "corpora" / "kings.txt")
    return "corpora/kings.txt"


@pytest.fixture
def sent(monkeypatch, outbox) -> list[dict]:
    """Training messages are recorded, not sent (at once: the test's transaction never commits); these tests run
    the task's body themselves. A proxy check's update, sent when one of its runs finishes, runs at once."""
    from django.db import transaction

    from lts_web import queueing

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    outbox.run.add(queueing.UPDATE_PROXY_CHECK)
    return outbox


@pytest.fixture
def dataset(actors, corpus, sent):
    from models_zoo import services

    return services.do_register_dataset(owner=actors.alice, team=actors.acme, name="kings", kind="folder", path=corpus)


@pytest.fixture
def one_thread():
    """A 32-wide model gains nothing from a second thread (tests/models_zoo/core/conftest.py)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_checkpoint(folder: Path, arch: dict | None = None) -> Path:
    """A GPT-2 checkpoint folder as Hugging Face writes it (random weights, no tokenizer)."""
    from searches.core.arch import Architecture, build_model

    model = build_model(Architecture.from_dict({**TINY_ARCH, "vocab_size": 300, **(arch or {})}))
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The actors' three users cost ~0.5 s of PBKDF2 per test; these tests are not about passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
