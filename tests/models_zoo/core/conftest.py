"""Fixtures of the model-zoo core tests: a text the tests write, a small trained BPE and a 2-layer, 32-wide GPT-2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models_zoo.core import LocalSource, TrainConfig, prepare_data
from searches.core.arch import Architecture

# About 40 KB of templated sentences: enough structure that a 2-layer, 32-wide model's loss falls clearly within
# 40 steps, small enough that the BPE trains in ~0.1 s.
_NOUNS = ["king", "queen", "knight", "horse", "castle", "river", "sword", "crown", "garden", "tower"]
_ADJS = ["old", "young", "brave", "quiet", "golden", "dark", "gentle", "proud"]
_VERBS = ["sees", "loves", "guards", "fears", "finds", "leaves", "keeps", "names"]


def write_corpus(path: Path, lines: int = 1200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    def pick(words):
        return words[int(rng.integers(len(words)))]

    text = "".join(
        f"The {pick(_ADJS)} {pick(_NOUNS)} {pick(_VERBS)} the {pick(_NOUNS)}.\n" for _ in range(lines)
    )
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine a busy neighbour makes
    2-thread OpenMP wait: 40 steps took 3-5 s with 2 threads against 0.5 s with 1 here. Module scope, so that
    module-scoped runs (test_trainer's reference run) use the same thread count as the tests comparing bits
    with them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt")


@pytest.fixture(scope="session")
def tiny(corpus_file):
    """(tokenizer, data) for the corpus: a byte-level BPE trained on its first 90% (asked for 400 tokens, gets 361:
    the corpus has ~30 distinct words)."""
    return prepare_data(LocalSource(str(corpus_file)), "bpe:400", val_fraction=0.1)


@pytest.fixture
def tiny_arch() -> Architecture:
    return Architecture(n_layer=2, d_model=32, d_inner=64, n_head=2, max_sequence_length=64)


@pytest.fixture
def make_config():
    """TrainConfig factory: 40 steps of 8 x 32 tokens, lr 3e-3 (a 32-wide model tolerates 5x GPT-2's), evaluation and
    checkpoint every 10 steps, a report every step."""

    def make(**overrides) -> TrainConfig:
        settings = dict(seq_len=32, batch_size=8, max_steps=40, lr=3e-3, min_lr=3e-4, warmup_steps=4,
                        eval_interval=10, eval_batches=4, checkpoint_interval=10, log_interval=1)
        settings.update(overrides)
        return TrainConfig(**settings)

    return make
