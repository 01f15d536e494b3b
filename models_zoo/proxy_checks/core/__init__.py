"""The proxy check's science: which architectures to train and how well a predictor ranks them.

Pure Python (numpy, scipy), no Django, no Celery: the services, the command line and notebooks call these::

    pool = pool_from_space(get_space("gpt2-lts"))
    picks = [pool[i] for i in stratified_sample(pool, 12, seed=1)]
    ... train them ...
    result = analyze({400_000: [{"archid": ..., "proxy": ..., "total_params": ..., "d_model": ..., "val_ppl": ...}]})
    print(interpret(result, planned=12))
"""
from __future__ import annotations

from .report import PREDICTORS, RECOMMENDED_MODELS, analyze, format_interval, interpret
from .sampling import MAX_POOL, SampleError, pool_from_space, stratified_sample
from .stats import (
    MIN_MODELS,
    Coefficient,
    bootstrap_interval,
    concordance,
    correlate,
    kendall_batch,
    spearman_batch,
    summarize,
)

__all__ = [
    "Coefficient",
    "MAX_POOL",
    "MIN_MODELS",
    "PREDICTORS",
    "RECOMMENDED_MODELS",
    "SampleError",
    "analyze",
    "bootstrap_interval",
    "concordance",
    "correlate",
    "format_interval",
    "interpret",
    "kendall_batch",
    "pool_from_space",
    "spearman_batch",
    "stratified_sample",
    "summarize",
]
