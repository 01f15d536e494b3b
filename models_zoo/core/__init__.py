"""The model-zoo core: training data, tokenizers, the trainer and the export to Hugging Face checkpoints.

Pure Python (numpy, torch, transformers, tokenizers, datasets), no Django, no Celery: the Celery task, the
management commands and notebooks call these same functions. A run in three calls::

    tokenizer, data = prepare_data(LocalSource("input.txt"), "bpe:8192")
    result = train(arch, tokenizer, data, TrainConfig(max_steps=2000), run_dir)   # resumes if run_dir has a checkpoint
    export_model(run_dir, zoo_dir / arch.archid, measurements=rows)
"""
from __future__ import annotations

from .data import (
    BatchSampler,
    Corpus,
    DataError,
    HubSource,
    LocalSource,
    TextSource,
    TokenData,
    confined_path,
    eval_windows,
    load_split,
    prepare_data,
    require_hub,
    source_from_spec,
    split_documents,
    tokenize_split,
)
from .export import architecture_from_hf_config, export_model, render_model_card
from .tokenizers import (
    EOS_TOKEN,
    MIN_VOCAB_SIZE,
    TokenizerError,
    load_gpt2_files,
    load_tokenizer,
    resolve_tokenizer,
    save_tokenizer,
    train_bpe,
    validate_tokenizer,
)
from .trainer import (
    CHECKPOINT_NAME,
    MAX_BATCH_TOKENS,
    MAX_MINUTES,
    MAX_STEPS,
    MAX_TOKENS,
    TOKENIZER_DIR,
    Progress,
    ResumeError,
    TrainConfig,
    TrainConfigError,
    TrainResult,
    evaluate,
    learning_rate,
    load_checkpoint,
    model_from_checkpoint,
    saved_tokenizer,
    train,
)

__all__ = [
    "BatchSampler",
    "CHECKPOINT_NAME",
    "Corpus",
    "DataError",
    "EOS_TOKEN",
    "HubSource",
    "LocalSource",
    "MAX_BATCH_TOKENS",
    "MAX_MINUTES",
    "MAX_STEPS",
    "MAX_TOKENS",
    "MIN_VOCAB_SIZE",
    "Progress",
    "ResumeError",
    "TOKENIZER_DIR",
    "TextSource",
    "TokenData",
    "TokenizerError",
    "TrainConfig",
    "TrainConfigError",
    "TrainResult",
    "architecture_from_hf_config",
    "confined_path",
    "eval_windows",
    "evaluate",
    "export_model",
    "learning_rate",
    "load_checkpoint",
    "load_gpt2_files",
    "load_split",
    "load_tokenizer",
    "model_from_checkpoint",
    "prepare_data",
    "render_model_card",
    "require_hub",
    "resolve_tokenizer",
    "save_tokenizer",
    "saved_tokenizer",
    "source_from_spec",
    "split_documents",
    "tokenize_split",
    "train",
    "train_bpe",
    "validate_tokenizer",
]
