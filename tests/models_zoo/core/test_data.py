"""Data sources, confined paths, the split, tokenization and the batch sampler."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from models_zoo.core import (
    BatchSampler,
    Corpus,
    DataError,
    HubSource,
    LocalSource,
    confined_path,
    load_split,
    source_from_spec,
    split_documents,
    tokenize_split,
)
from models_zoo.core import data as data_module

ROOT = Path(__file__).resolve().parents[3]


def test_core_imports_without_django():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = "import sys, models_zoo.core; assert not {'django', 'celery'} & set(sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


# ------------------------------------------------------------------------------------------------ confined paths


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "root"
    (root / "corpus").mkdir(parents=True)
    (root / "corpus" / "a.txt").write_text("alpha\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return root


def test_confined_path_accepts_relative_and_absolute_inside(data_root):
    assert confined_path(data_root, "corpus/a.txt") == (data_root / "corpus" / "a.txt").resolve()
    assert confined_path(data_root, str(data_root / "corpus")) == (data_root / "corpus").resolve()
    assert confined_path(data_root, "not/yet/there.txt").name == "there.txt"  # existence is the caller's check


@pytest.mark.parametrize("bad", ["..", "../secret.txt", "corpus/../../secret.txt", "corpus/../a.txt"])
def test_confined_path_rejects_dotdot(data_root, bad):
    with pytest.raises(DataError, match=r"'\.\.' is not allowed") as info:
        confined_path(data_root, bad)
    assert set(info.value.errors) == {"path"}


def test_confined_path_rejects_absolute_outside(data_root):
    for bad in ("/etc/passwd", str(data_root.parent / "secret.txt"), str(data_root) + "-sibling/x.txt"):
        with pytest.raises(DataError, match="outside the data root"):
            confined_path(data_root, bad)


def test_confined_path_rejects_symlink_escape(data_root):
    (data_root / "escape.txt").symlink_to(data_root.parent / "secret.txt")
    (data_root / "escape_dir").symlink_to(data_root.parent)
    (data_root / "inside.txt").symlink_to(data_root / "corpus" / "a.txt")
    for bad in ("escape.txt", "escape_dir/secret.txt"):
        with pytest.raises(DataError, match="through a symlink"):
            confined_path(data_root, bad)
    assert confined_path(data_root, "inside.txt") == (data_root / "corpus" / "a.txt").resolve()


def test_folder_source_skips_nothing_and_refuses_escaping_links(data_root):
    (data_root / "corpus" / "b.txt").write_text("beta\n")
    (data_root / "corpus" / "notes.md").write_text("ignored\n")
    assert LocalSource("corpus", root=str(data_root)).load().train == ["alpha\n", "beta\n"]
    (data_root / "corpus" / "leak.txt").symlink_to(data_root.parent / "secret.txt")
    with pytest.raises(DataError, match="outside the data root"):
        LocalSource("corpus", root=str(data_root)).load()
    with pytest.raises(DataError, match=r"'\.\.'"):
        LocalSource("../secret.txt", root=str(data_root)).load()


# ------------------------------------------------------------------------------------------------ bad data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\n\t ", "is empty"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "looks binary"),
        (b"caf\xe9 latin-1 text", "not UTF-8 text .*offset 3"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        LocalSource(str(path)).load()
    assert set(info.value.errors) == {"path"}


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LocalSource(str(tmp_path / "nope.txt")).load()
    with pytest.raises(DataError, match="no .txt files"):
        LocalSource(str(tmp_path)).load()


def test_text_too_short_for_a_sequence(tmp_path, tiny):
    tokenizer, _ = tiny
    path = tmp_path / "short.txt"
    path.write_text("one line only\n" * 3)
    corpus = load_split(LocalSource(str(path)), 0.5)
    data = tokenize_split(corpus, tokenizer)
    with pytest.raises(DataError, match="fewer than two sequences of 32"):
        BatchSampler(data.train, seq_len=32, batch_size=4)


# ------------------------------------------------------------------------------------------------ hub


def test_hub_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(DataError, match="offline .*HF_HUB_OFFLINE") as info:
        HubSource("wikitext", "train", "text", config="wikitext-2-raw-v1").load()
    assert time.monotonic() - started < 1.0
    assert set(info.value.errors) == {"name"}


def test_hub_unreachable_fails_fast(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens, refused at once
    started = time.monotonic()
    with pytest.raises(DataError, match="unreachable"):
        HubSource("wikitext").load()
    assert time.monotonic() - started < data_module._HUB_CONNECT_TIMEOUT_S + 1


def test_hub_source_reads_field_and_validation_split(monkeypatch):
    import datasets

    rows = {"train": ["first doc", "", "second doc"], "validation": ["held out"]}
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if split not in rows:
            raise ValueError(f'Unknown split "{split}"')
        return datasets.Dataset.from_dict({"text": rows[split], "label": [0] * len(rows[split])})

    monkeypatch.setattr(data_module, "require_hub", lambda: None)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    corpus = HubSource("someone/corpus", "train", "text", validation_split="validation").load()
    assert corpus == Corpus(train=["first doc", "second doc"], validation=["held out"])
    assert calls == [("someone/corpus", None, "train"), ("someone/corpus", None, "validation")]
    with pytest.raises(DataError, match="'body' is not a column .*text, label") as info:
        HubSource("someone/corpus", text_field="body").load()
    assert set(info.value.errors) == {"text_field"}
    with pytest.raises(DataError, match="Unknown split") as info:
        HubSource("someone/corpus", split="tain").load()
    assert set(info.value.errors) == {"split"}


def test_source_from_spec(tmp_path):
    (tmp_path / "a.txt").write_text("x\n")
    assert source_from_spec(str(tmp_path / "a.txt")) == LocalSource(str(tmp_path / "a.txt"))
    assert source_from_spec("a.txt", root=tmp_path) == LocalSource("a.txt", root=str(tmp_path))
    assert source_from_spec("hub:wikitext", split="test") == HubSource("wikitext", "test")
    assert source_from_spec("roneneldan/TinyStories") == HubSource("roneneldan/TinyStories")
    with pytest.raises(DataError):
        source_from_spec("../a.txt", root=tmp_path)


# ------------------------------------------------------------------------------------------------ split, tokens


def test_split_documents_cuts_the_tail_at_a_line_break():
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    train, val = split_documents([text], 0.1)
    assert "".join(train + val) == text
    assert train[0].endswith("\n") and val[0].startswith("line 09")
    assert abs(len(val[0]) - 90) <= 9
    train, val = split_documents(["a" * 50, "b" * 30, "c" * 20], 0.25)
    assert train == ["a" * 50, "b" * 25] and val == ["b" * 5, "c" * 20]
    with pytest.raises(DataError, match="must be in"):
        split_documents([text], 1.0)


def test_tokenize_split_joins_documents_with_eos_and_caches(tmp_path, tiny):
    tokenizer, _ = tiny
    corpus = Corpus(train=["The old king.\n", "The young queen.\n"], validation=["The brave knight.\n"])
    data = tokenize_split(corpus, tokenizer, cache_dir=tmp_path)
    eos = tokenizer.eos_token_id
    assert data.train.dtype == np.uint16 and list(data.train).count(eos) == 2 and data.train[-1] == eos
    assert tokenizer.decode([int(t) for t in data.train if t != eos]) == "The old king.\nThe young queen.\n"
    cached = list(tmp_path.glob("tokens-*.npz"))
    assert len(cached) == 1 and not list(tmp_path.glob(".tokens-*"))
    again = tokenize_split(corpus, tokenizer, cache_dir=tmp_path)
    assert np.array_equal(again.train, data.train) and again.fingerprint == data.fingerprint


# ------------------------------------------------------------------------------------------------ sampler


def test_batch_sampler_is_a_function_of_seed_and_position():
    tokens = np.arange(1000, dtype=np.uint16)
    a = BatchSampler(tokens, seq_len=16, batch_size=4, seed=3)
    first = [a.next() for _ in range(40)]  # 160 windows: crosses two epochs of 61
    b = BatchSampler(tokens, seq_len=16, batch_size=4, seed=3)
    b.load_state(BatchSampler(tokens, 16, 4, seed=3, position=25).state())
    assert all(np.array_equal(b.next(), first[i]) for i in range(25, 40))
    for batch in first:
        assert batch.shape == (4, 17)
        assert np.all(np.diff(batch, axis=1) == 1)  # contiguous windows of the array
    epoch0 = np.concatenate(first)[: a.windows_per_epoch, 0]
    assert len(set(epoch0.tolist())) == a.windows_per_epoch  # every window once per epoch
    assert not np.array_equal(BatchSampler(tokens, 16, 4, seed=4).next(), first[0])
    with pytest.raises(DataError, match="seed"):
        a.load_state({"seed": 4, "position": 0})
