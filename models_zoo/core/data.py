"""Training text: where it comes from, the train/validation split, the token arrays and the batch sampler.

Sources are small frozen dataclasses with ``describe()`` (for the model card) and ``load()``:

- :class:`LocalSource`: an (uploaded) UTF-8 text file, or a folder of ``.txt`` files, one document each; with
  ``root`` set (LTS_DATA_ROOT) the path is confined to it by :func:`confined_path`;
- :class:`HubSource`: a Hugging Face dataset name, split and text field, loaded with ``datasets`` when online.

``split_documents`` cuts a source without a validation split by fraction, :func:`tokenize_split` turns both parts into
flat token arrays (documents joined by the end-of-text token, cached on disk when asked), and :class:`BatchSampler`
draws training batches whose position is one integer, so a resumed run continues with exactly the next batch.
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from .paths import DataError, confined_path
from .tokenizers import resolve_tokenizer, validate_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BatchSampler",
    "Corpus",
    "DataError",
    "HubSource",
    "LocalSource",
    "TextSource",
    "TokenData",
    "confined_path",
    "eval_windows",
    "load_split",
    "prepare_data",
    "require_hub",
    "source_from_spec",
    "sniff_text",
    "split_documents",
    "tokenize_split",
]

# A NUL byte in the first 8 KiB is how git and grep tell binary from text (text files practically never hold one);
# 64 KiB also gives the UTF-8 check enough text to see a Latin-1 accent, and costs under a millisecond to read: a
# corpus of gigabytes is read whole only by the worker that trains on it.
_SNIFF_BYTES = 64 * 1024
# Seconds to wait for the hub before declaring the machine offline: a TCP connect to a reachable host takes
# < 0.3 s even across continents, and a user waits for the error, so 3 s.
_HUB_CONNECT_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}


# ----------------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Corpus:
    """Documents of a source; ``validation`` is None when the source has no validation split of its own."""

    train: list[str]
    validation: list[str] | None = None


class TextSource:
    """What every source offers (a protocol: LocalSource and HubSource implement it)."""

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self) -> Corpus:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class LocalSource(TextSource):
    """A UTF-8 text file, or every ``*.txt`` file under a folder (sorted, recursive; one document each).

    With ``root`` the ``path`` is taken relative to it and confined to it (every file found in a folder too, so a
    symlink inside the folder cannot point out of the root).
    """

    path: str
    root: str | None = None

    def describe(self) -> str:
        return f"local:{self.path}" if self.root is None else f"data-root:{self.path}"

    def resolve(self) -> Path:
        if self.root is not None:
            return confined_path(self.root, self.path)
        return Path(self.path).expanduser().resolve()

    def _files(self, path: Path) -> list[Path]:
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if self.root is not None:
            files = [confined_path(self.root, f) for f in files]  # no symlink inside the folder leads out of the root
        if not files:
            raise DataError({"path": f"folder {self.path} contains no .txt files"})
        return files

    def check(self) -> int:
        """Check that the file (or the first .txt file of the folder) looks like UTF-8 text without reading the
        whole corpus (sniff_text); the size in bytes of what load() would read."""
        path = self.resolve()
        if path.is_dir():
            files = self._files(path)
            sniff_text(files[0], str(files[0].relative_to(path.parent)))
            return sum(f.stat().st_size for f in files)
        if not path.is_file():
            raise DataError({"path": f"{self.path} does not exist" + (" under the data root" if self.root else "")})
        sniff_text(path, self.path)
        return path.stat().st_size

    def load(self) -> Corpus:
        path = self.resolve()
        if path.is_dir():
            files = self._files(path)
            docs = [_read_text(f, shown=str(f)) for f in files]
            docs = [d for d in docs if d.strip()]
            if not docs:
                raise DataError({"path": f"every .txt file under {self.path} is empty"})
            return Corpus(train=docs)
        if not path.exists():
            raise DataError({"path": f"{self.path} does not exist"})
        text = _read_text(path, shown=self.path)
        if not text.strip():
            raise DataError({"path": f"{self.path} is empty"})
        return Corpus(train=[text])


def sniff_text(path: Path, shown: str) -> None:
    """DataError unless the first _SNIFF_BYTES of ``path`` look like non-empty UTF-8 text (``shown`` names it)."""
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if not head.strip():
        raise DataError({"path": f"{shown} is empty"})
    if b"\x00" in head:
        raise DataError({"path": f"{shown} looks binary (NUL bytes), not a text file"})
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut by the sniff window
            raise DataError({"path": f"{shown} is not UTF-8 text (invalid byte at offset {exc.start})"}) from None


def _read_text(path: Path, *, shown: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError({"path": f"cannot read {shown}: {exc.strerror or exc}"}) from exc
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise DataError({"path": f"{shown} looks binary (NUL bytes), not a text file"})
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError({"path": f"{shown} is not UTF-8 text (invalid byte at offset {exc.start})"}) from exc


@dataclass(frozen=True)
class HubSource(TextSource):
    """A Hugging Face dataset: ``datasets.load_dataset(name, config, split=split)``, text in ``text_field``.

    Needs the network: offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set, or the hub unreachable within 3 s) it
    fails at once with a DataError instead of hanging in retries.
    """

    name: str
    split: str = "train"
    text_field: str = "text"
    config: str | None = None
    validation_split: str | None = None

    def describe(self) -> str:
        parts = [f"hub:{self.name}"] + ([self.config] if self.config else [])
        described = "/".join(parts) + f" split={self.split} field={self.text_field}"
        return described + (f" validation={self.validation_split}" if self.validation_split else "")

    def load(self) -> Corpus:
        if not self.name or not self.name.strip():
            raise DataError({"name": "a dataset name is required"})
        require_hub()
        train = self._load_split(self.split, "split")
        validation = self._load_split(self.validation_split, "validation_split") if self.validation_split else None
        return Corpus(train=train, validation=validation)

    def _load_split(self, split: str, field_name: str) -> list[str]:
        import datasets

        try:
            ds = datasets.load_dataset(self.name, self.config, split=split)
        except (ValueError, KeyError) as exc:  # unknown split / config
            raise DataError({field_name: f"{self.name}: {exc}"}) from exc
        except Exception as exc:  # noqa: BLE001 - the hub raises many types (FileNotFound, HTTP, connection ...)
            raise DataError({"name": f"cannot load dataset {self.name!r}: {type(exc).__name__}: {exc}"}) from exc
        if self.text_field not in ds.column_names:
            raise DataError({"text_field": f"{self.text_field!r} is not a column of {self.name} (columns: {', '.join(ds.column_names)})"})
        docs = [t for t in ds[self.text_field] if isinstance(t, str) and t.strip()]
        if not docs:
            raise DataError({field_name: f"{self.name} split {split!r} has no non-empty {self.text_field!r} text"})
        return docs


def require_hub() -> None:
    """Raise a DataError now when the hub cannot be reached, instead of letting datasets retry for minutes.

    Also the check of the web before it registers a hub dataset or imports a hub model."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            raise DataError({"name": f"this machine is offline ({var} is set): Hugging Face datasets cannot be loaded; "
                                     "use a local file or a folder under the data root"})
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=_HUB_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise DataError({"name": f"the Hugging Face hub ({host}:{port}) is unreachable ({exc}): this machine looks "
                                 "offline; use a local file or a folder under the data root"}) from exc


# ----------------------------------------------------------------------------------------------------- split


def split_documents(docs: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """The last ``val_fraction`` of the characters as validation, cut at a line break where there is one.

    Cutting the tail (not sampling documents) keeps the split exact for a single file (tinyshakespeare is one
    document) and identical across runs; a cut inside a document ends the train part at the last newline before the
    cut point, like nanoGPT's 90/10 split of tinyshakespeare.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError({"val_fraction": f"must be in (0, 1), got {val_fraction!r}"})
    total = sum(map(len, docs))
    cut = int(round(total * (1.0 - val_fraction)))
    train: list[str] = []
    val: list[str] = []
    seen = 0
    for doc in docs:
        if seen >= cut:
            val.append(doc)
        elif seen + len(doc) <= cut:
            train.append(doc)
        else:
            at = cut - seen
            newline = doc.rfind("\n", 0, at)
            at = newline + 1 if newline > 0 else at
            train.append(doc[:at])
            val.append(doc[at:])
        seen += len(doc)
    train, val = [d for d in train if d], [d for d in val if d]
    if not train or not val:
        raise DataError({"val_fraction": f"{val_fraction} leaves an empty train or validation part of {total} characters"})
    return train, val


def source_from_spec(spec: str, *, root: str | os.PathLike[str] | None = None, split: str = "train",
                     text_field: str = "text", config: str | None = None,
                     validation_split: str | None = None) -> TextSource:
    """The source a command line names (PATH_OR_NAME): ``hub:NAME`` or an existing local path (confined to
    ``root`` when given) is used as such; anything else is taken as a hub dataset name."""
    if spec.startswith("hub:"):
        return HubSource(spec[4:], split, text_field, config, validation_split)
    if root is not None:
        if confined_path(root, spec).exists():
            return LocalSource(spec, root=os.fspath(root))
    elif Path(spec).expanduser().exists():
        return LocalSource(spec)
    return HubSource(spec, split, text_field, config, validation_split)


def load_split(source: TextSource, val_fraction: float = 0.1) -> Corpus:
    """The source's documents with a validation part: its own validation split, else the last ``val_fraction``."""
    corpus = source.load()
    if corpus.validation:
        return corpus
    train, val = split_documents(corpus.train, val_fraction)
    return Corpus(train=train, validation=val)


# ----------------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenData:
    """Flat token arrays (uint16 when the vocabulary fits, else uint32), documents separated by end-of-text."""

    train: np.ndarray
    val: np.ndarray
    description: str
    val_chars: int  # characters behind ``val``: bits per character = val_loss * len(val) / (val_chars * ln 2)

    @property
    def fingerprint(self) -> str:
        """sha1 of both arrays: a resumed run checks it is fed the data it started with."""
        digest = hashlib.sha1()
        for arr in (self.train, self.val):
            digest.update(str(arr.dtype).encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()


def tokenize_split(
    corpus: Corpus,
    tokenizer: PreTrainedTokenizerBase,
    *,
    description: str = "",
    cache_dir: str | os.PathLike[str] | None = None,
) -> TokenData:
    """Tokenize once: each part becomes one array, an end-of-text token after every document.

    With ``cache_dir`` the arrays are stored as ``tokens-<sha1>.npz`` keyed by the texts and the tokenizer, written
    to a temporary file and renamed into place, so concurrent runs on the same data share one file safely.
    """
    if not corpus.validation:
        raise DataError({"val_fraction": "the corpus has no validation part: call load_split first"})
    vocab = len(tokenizer)
    dtype = np.uint16 if vocab <= 2**16 else np.uint32
    val_chars = sum(map(len, corpus.validation))
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha1()
        key.update(tokenizer.backend_tokenizer.to_str().encode())
        for part in (corpus.train, corpus.validation):
            key.update(b"\x01")
            for doc in part:
                key.update(doc.encode("utf-8", "surrogatepass"))
                key.update(b"\x00")
        cache_file = Path(cache_dir) / f"tokens-{key.hexdigest()}.npz"
        if cache_file.exists():
            with np.load(cache_file) as cached:
                return TokenData(cached["train"], cached["val"], description, val_chars)
    arrays = [_encode(part, tokenizer, dtype) for part in (corpus.train, corpus.validation)]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".tokens-", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, train=arrays[0], val=arrays[1])
            os.replace(tmp, cache_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return TokenData(arrays[0], arrays[1], description, val_chars)


def _encode(docs: Sequence[str], tokenizer: PreTrainedTokenizerBase, dtype: type) -> np.ndarray:
    eos = tokenizer.eos_token_id
    # The Rust tokenizer directly: batch-parallel, and no "sequence longer than model_max_length" warning for a
    # 1 MB document (tinyshakespeare: 0.3 s for 338k GPT-2 tokens here).
    encodings = tokenizer.backend_tokenizer.encode_batch(list(docs), add_special_tokens=False)
    pieces: list[np.ndarray] = []
    for enc in encodings:
        pieces.append(np.asarray(enc.ids, dtype=dtype))
        if eos is not None:
            pieces.append(np.asarray([eos], dtype=dtype))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)


def prepare_data(
    source: TextSource,
    tokenizer: str | PreTrainedTokenizerBase,
    *,
    val_fraction: float = 0.1,
    cache_dir: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> tuple[PreTrainedTokenizerBase, TokenData]:
    """Load and split the source, get the tokenizer (an instance, or a spec for
    :func:`~models_zoo.core.tokenizers.resolve_tokenizer`: a ``bpe:N`` tokenizer learns from the training part
    only) and tokenize both parts."""
    corpus = load_split(source, val_fraction)
    if isinstance(tokenizer, str):
        tokenizer = resolve_tokenizer(tokenizer, corpus.train, root=root)
    validate_tokenizer(tokenizer)
    split = "its validation split" if getattr(source, "validation_split", None) else f"the last {val_fraction:.0%} of the text"
    data = tokenize_split(corpus, tokenizer, description=f"{source.describe()} (validation: {split})",
                          cache_dir=cache_dir)
    return tokenizer, data


# ----------------------------------------------------------------------------------------------------- batches


class BatchSampler:
    """Training batches of ``batch_size`` windows of ``seq_len + 1`` tokens, reproducible from (seed, position).

    Epoch e cuts the array into non-overlapping windows starting at a random offset in [0, seq_len) and visits them
    in a random order; both come from ``default_rng((seed, e))``, so every window of the epoch is seen once and
    batch ``position`` is a pure function of the seed and ``position``: the state to checkpoint is one integer.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int = 0, position: int = 0):
        # Every epoch has the same number of windows, len // seq_len - 1, whatever its offset (< seq_len), so batch
        # ``position`` maps to (epoch, index) by one division.
        self.windows_per_epoch = len(tokens) // seq_len - 1
        if self.windows_per_epoch < 1:
            raise DataError({"path": f"the training text has {len(tokens)} tokens, fewer than two sequences of "
                                     f"{seq_len}: use more text or a shorter sequence"})
        self.tokens = tokens
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.position = position
        self._epoch: tuple[int, int, np.ndarray] | None = None  # (epoch, offset, order) of the last epoch used

    def _windows(self, epoch: int) -> tuple[int, np.ndarray]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng((self.seed, epoch))
            offset = int(rng.integers(self.seq_len))
            self._epoch = (epoch, offset, rng.permutation(self.windows_per_epoch))
        return self._epoch[1], self._epoch[2]

    def batch(self, position: int) -> np.ndarray:
        """The (batch_size, seq_len + 1) int64 array of batch ``position``, crossing into the next epoch as needed."""
        out = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        for row in range(self.batch_size):
            epoch, index = divmod(position * self.batch_size + row, self.windows_per_epoch)
            offset, order = self._windows(epoch)
            start = offset + int(order[index]) * self.seq_len
            out[row] = self.tokens[start : start + self.seq_len + 1]
        return out

    def next(self) -> np.ndarray:
        batch = self.batch(self.position)
        self.position += 1
        return batch

    def state(self) -> dict[str, int]:
        return {"seed": self.seed, "position": self.position}

    def load_state(self, state: Mapping[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise DataError({"seed": f"sampler state is for seed {state['seed']}, not {self.seed}"})
        self.position = int(state["position"])


def eval_windows(tokens: np.ndarray, seq_len: int, max_windows: int | None = None) -> np.ndarray:
    """Start offsets of non-overlapping validation windows, evenly spread when capped at ``max_windows``."""
    count = (len(tokens) - 1) // seq_len
    if count < 1:
        raise DataError({"val_fraction": f"the validation text has {len(tokens)} tokens, fewer than "
                                         f"seq_len + 1 = {seq_len + 1}: raise val_fraction or shorten the sequence"})
    starts = np.arange(count, dtype=np.int64) * seq_len
    if max_windows is not None and max_windows < count:
        starts = starts[np.linspace(0, count - 1, max_windows).round().astype(np.int64)]
    return starts

