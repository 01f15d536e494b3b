"""Fixtures of the proxy-check web tests (the model-zoo ones come from tests/models_zoo/conftest.py): a space of tiny
architectures and a check created with it."""
from __future__ import annotations

import pytest

# 2 * 3 * 2 = 12 architectures of 1,664 to 34,560 non-embedding parameters: a run of 2 steps takes ~0.1 s.
TINY_SPACE = {"n_layer": [1, 2], "d_model": [16, 32, 64], "d_inner": [32, 64], "n_head": [2], "max_sequence_length": 64}
# Two steps of 8 x 32 tokens per model (the budget is max_tokens), a report every step.
TINY_CONFIG = {"seq_len": 32, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "eval_batches": 2, "log_interval": 1}
TOKENS = 512


@pytest.fixture
def create(actors, dataset, sent):
    """do_create_proxy_check with the tiny settings; keyword arguments override."""
    from models_zoo.proxy_checks import services

    def _create(**overrides):
        kwargs = dict(owner=actors.alice, team=actors.acme, dataset=dataset, tokenizer="bpe:300", max_tokens=TOKENS,
                      sample_size=4, config=TINY_CONFIG, space=TINY_SPACE)
        kwargs.update(overrides)
        return services.do_create_proxy_check(**kwargs)

    return _create
