"""Tokenizers of a training run: the GPT-2 BPE from local files, or a byte-level BPE trained on the data.

Both come back as a transformers ``GPT2Tokenizer`` (fast, backed by ``tokenizers``) with ``<|endoftext|>`` as
end-of-text, so a saved one is ordinary Hugging Face format (tokenizer.json + tokenizer_config.json) that
``AutoTokenizer.from_pretrained(dir)`` loads. Every loader ends in :func:`validate_tokenizer`, because the classic
mistake fails silently: in transformers 5 ``GPT2Tokenizer(vocab_file=..., merges_file=...)`` ignores both keywords
(they became ``vocab=``/``merges=``) and returns a tokenizer with no vocabulary that encodes every text to ``[]``.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from searches.core.arch import ConfigError

from .paths import confined_path

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "EOS_TOKEN",
    "MIN_VOCAB_SIZE",
    "TokenizerError",
    "check_tokenizer_spec",
    "check_vocab_size",
    "load_gpt2_files",
    "load_tokenizer",
    "resolve_tokenizer",
    "save_tokenizer",
    "train_bpe",
    "validate_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
# A byte-level BPE needs its 256 byte symbols plus the end-of-text token before any merge: fewer tokens means the
# vocabulary is empty or truncated (the vocab_file= mistake yields 0 base tokens and 1 added token).
MIN_VOCAB_SIZE = 257
# Above 2^20 the embedding alone (x d_model 1024, fp32) passes 4 GiB; nothing in the LTS spaces comes near (50,257).
MAX_VOCAB_SIZE = 2**20
# File pairs accepted for the GPT-2 BPE: OpenAI's original names, then the Hugging Face names.
_GPT2_FILE_PAIRS = (("encoder.json", "vocab.bpe"), ("vocab.json", "merges.txt"))
_PROBE = "Hello, world!\n  Tabs\tand ünïcödé 123."


class TokenizerError(ConfigError):
    """A tokenizer is unusable. ``errors`` maps ``tokenizer`` (or ``vocab_size``) to the message."""


def validate_tokenizer(tokenizer: PreTrainedTokenizerBase, *, what: str = "tokenizer") -> PreTrainedTokenizerBase:
    """Return the tokenizer, or raise TokenizerError when it cannot feed a GPT-2 training run.

    Checks: a fast (Rust) backend, at least 257 base tokens, an end-of-text token, and an exact encode/decode round
    trip of a probe string (a byte-level BPE reproduces any text; one with an unknown token does not).
    """
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise TokenizerError({"tokenizer": f"{what} has no fast (tokenizers) backend: {type(tokenizer).__name__}"})
    base = int(tokenizer.vocab_size or 0)
    if base < MIN_VOCAB_SIZE:
        raise TokenizerError({"tokenizer": (
            f"{what} has only {base} base tokens (at least {MIN_VOCAB_SIZE} needed): the vocabulary is empty or "
            "truncated. In transformers 5, GPT2Tokenizer(vocab_file=..., merges_file=...) silently ignores both "
            "keywords; pass vocab= and merges=, or use load_gpt2_files(dir)")})
    if len(tokenizer) > MAX_VOCAB_SIZE:
        raise TokenizerError({"tokenizer": f"{what} has {len(tokenizer)} tokens, more than {MAX_VOCAB_SIZE}"})
    if tokenizer.eos_token_id is None:
        raise TokenizerError({"tokenizer": f"{what} has no end-of-text token (expected {EOS_TOKEN!r})"})
    ids = tokenizer.encode(_PROBE, add_special_tokens=False)
    if not ids:
        raise TokenizerError({"tokenizer": f"{what} encodes text to no tokens: its vocabulary or merges are missing"})
    decoded = tokenizer.decode(ids)
    if decoded != _PROBE:
        raise TokenizerError({"tokenizer": f"{what} does not round-trip text ({_PROBE!r} -> {decoded!r}): a byte-level "
                                           "BPE is required"})
    return tokenizer


def load_gpt2_files(directory: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """The GPT-2 BPE from ``encoder.json`` + ``vocab.bpe`` (OpenAI names) or ``vocab.json`` + ``merges.txt``."""
    from transformers import GPT2Tokenizer

    folder = Path(directory)
    if not folder.is_dir():
        raise TokenizerError({"tokenizer": f"tokenizer folder {folder} does not exist"})
    for vocab_name, merges_name in _GPT2_FILE_PAIRS:
        vocab, merges = folder / vocab_name, folder / merges_name
        if vocab.is_file() and merges.is_file():
            break
    else:
        wanted = " or ".join(f"{a} + {b}" for a, b in _GPT2_FILE_PAIRS)
        raise TokenizerError({"tokenizer": f"{folder} holds neither {wanted}"})
    try:
        json.loads(vocab.read_text(encoding="utf-8"))
        tokenizer = GPT2Tokenizer(vocab=str(vocab), merges=str(merges))
    except Exception as exc:  # noqa: BLE001 - json, OSError, and the Rust side's plain Exception
        raise TokenizerError({"tokenizer": f"cannot read the GPT-2 BPE files in {folder}: {exc}"}) from exc
    return validate_tokenizer(tokenizer, what=f"GPT-2 BPE from {folder}")


def load_tokenizer(directory: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """A tokenizer saved in Hugging Face format (tokenizer.json), or GPT-2 BPE files, validated."""
    from transformers import AutoTokenizer

    folder = Path(directory)
    if not (folder / "tokenizer.json").is_file():
        return load_gpt2_files(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad tokenizer folder
        raise TokenizerError({"tokenizer": f"cannot load the tokenizer in {folder}: {exc}"}) from exc
    return validate_tokenizer(tokenizer, what=f"tokenizer in {folder}")


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> PreTrainedTokenizerBase:
    """A byte-level BPE (GPT-2's pre-tokenization and byte alphabet) trained on ``texts`` with ``<|endoftext|>`` as
    token 0. On little text the result can be smaller than ``vocab_size``: training stops when no pair occurs
    ``min_frequency`` times. Deterministic for the same texts and settings.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Tokenizer

    check_vocab_size(vocab_size)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOS_TOKEN],
                            show_progress=False)
    model = json.loads(bpe._tokenizer.to_str())["model"]
    # Rebuilt as a GPT2Tokenizer so a saved run says tokenizer_class "GPT2Tokenizer", like every GPT-2 checkpoint.
    # Merges as (left, right) tuples: the Rust BPE refuses "left right" strings despite the list[str] annotation.
    tokenizer = GPT2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]])  # type: ignore[misc]  # tuples: see above
    return validate_tokenizer(tokenizer, what=f"trained BPE ({vocab_size} requested)")


def check_vocab_size(vocab_size: object) -> int:
    """The size of a BPE to train, or TokenizerError({"vocab_size": ...}) outside [MIN_VOCAB_SIZE, MAX_VOCAB_SIZE]."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise TokenizerError({"vocab_size": f"vocabulary size must be in [{MIN_VOCAB_SIZE}, {MAX_VOCAB_SIZE}] (an "
                                            f"integer: 256 byte symbols + end-of-text + merges), got {vocab_size!r}"})
    return vocab_size


def _bpe_size(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise TokenizerError({"vocab_size": f"bpe: needs an integer vocabulary size, got {value!r}"}) from None


def check_tokenizer_spec(spec: object, *, root: str | os.PathLike[str] | None = None) -> None:
    """Raise TokenizerError({"tokenizer": ...}) unless ``spec`` names a usable tokenizer, before any data is read.

    gpt2-files:DIR and dir:DIR are loaded and validated now (DIR confined to ``root`` when given; this catches the
    transformers-5 empty-vocabulary mistake too); bpe:N is checked for its size (it is trained on the data later).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise TokenizerError({"tokenizer": "required: gpt2-files:DIR, bpe:VOCAB_SIZE or dir:DIR"})
    kind, _, value = spec.partition(":")
    try:
        if kind == "bpe":
            check_vocab_size(_bpe_size(value))
        else:
            resolve_tokenizer(spec, root=root)
    except ConfigError as exc:  # DataError (a path outside the root) or TokenizerError
        raise TokenizerError({"tokenizer": "; ".join(exc.errors.values())}) from None


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: str | os.PathLike[str]) -> Path:
    """Save in Hugging Face format; returns the folder."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def resolve_tokenizer(spec: str, texts: Sequence[str] | None = None, *, root: str | os.PathLike[str] | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer a command line or form names: ``gpt2-files:DIR``, ``bpe:VOCAB_SIZE`` (trained on ``texts``, the
    training documents) or ``dir:DIR`` (a saved Hugging Face tokenizer). With ``root``, DIR is confined to it.
    """
    kind, _, value = spec.partition(":")
    if kind in ("gpt2-files", "dir"):
        if not value:
            raise TokenizerError({"tokenizer": f"{kind}: needs a folder, e.g. {kind}:/data/gpt2-bpe"})
        if root is not None:
            folder: Path = confined_path(root, value)
        else:
            folder = Path(value).expanduser()
        return load_gpt2_files(folder) if kind == "gpt2-files" else load_tokenizer(folder)
    if kind == "bpe":
        size = _bpe_size(value)
        if texts is None:
            raise TokenizerError({"tokenizer": "bpe: needs the training texts to learn from"})
        return train_bpe(texts, size)
    raise TokenizerError({"tokenizer": f"unknown tokenizer {spec!r}: use gpt2-files:DIR, bpe:VOCAB_SIZE or dir:DIR"})
