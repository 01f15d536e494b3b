"""Tokenizers: trained BPE, GPT-2 BPE files under both naming conventions, and the loud failures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer, GPT2Tokenizer

from models_zoo.core import (
    TokenizerError,
    load_gpt2_files,
    load_tokenizer,
    resolve_tokenizer,
    save_tokenizer,
    train_bpe,
    validate_tokenizer,
)

SHARED_GPT2 = Path(__file__).resolve().parents[4] / "shared" / "data" / "gpt2-bpe"


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory, corpus_file):
    """A trained BPE written as GPT-2 files: vocab.json + merges.txt, and the same as encoder.json + vocab.bpe."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train([str(corpus_file)], vocab_size=320, special_tokens=["<|endoftext|>"], show_progress=False)
    hf = tmp_path_factory.mktemp("hf-names")
    bpe.save_model(str(hf))
    openai = tmp_path_factory.mktemp("openai-names")
    shutil.copy(hf / "vocab.json", openai / "encoder.json")
    shutil.copy(hf / "merges.txt", openai / "vocab.bpe")
    return hf, openai


def test_trained_bpe_round_trips_and_saves_in_hf_format(tmp_path, corpus_file):
    text = corpus_file.read_text()
    tokenizer = train_bpe([text], 400)
    # 361, not 400: the corpus has ~30 distinct words and no pair left occurs twice (min_frequency 2).
    assert 300 < len(tokenizer) < 400 and tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 0
    ids = tokenizer.encode("The golden crown names the river.\n")
    assert len(ids) < 20 and tokenizer.decode(ids) == "The golden crown names the river.\n"
    save_tokenizer(tokenizer, tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert type(loaded).__name__ == "GPT2Tokenizer" and loaded.get_vocab() == tokenizer.get_vocab()
    assert load_tokenizer(tmp_path / "tok").encode("ünïcödé ✓") == tokenizer.encode("ünïcödé ✓")


def test_gpt2_files_load_under_both_names(bpe_files):
    hf, openai = bpe_files
    a, b = load_gpt2_files(hf), load_gpt2_files(openai)
    assert len(a) == len(b) == 320
    assert a.encode("The quiet tower") == b.encode("The quiet tower")
    assert resolve_tokenizer(f"gpt2-files:{openai}").get_vocab() == a.get_vocab()


def test_vocab_file_keyword_mistake_is_caught(bpe_files):
    """transformers 5 silently ignores vocab_file=/merges_file= and builds an empty tokenizer: refuse it loudly."""
    hf, _ = bpe_files
    wrong = GPT2Tokenizer(vocab_file=str(hf / "vocab.json"), merges_file=str(hf / "merges.txt"))
    assert wrong.vocab_size == 0 and wrong.encode("hello") == []  # the trap itself, should transformers change
    with pytest.raises(TokenizerError, match="only 0 base tokens.*vocab_file=.*silently ignores") as info:
        validate_tokenizer(wrong)
    assert set(info.value.errors) == {"tokenizer"}
    right = GPT2Tokenizer(vocab=str(hf / "vocab.json"), merges=str(hf / "merges.txt"))
    assert validate_tokenizer(right) is right


def test_truncated_vocabulary_is_refused(tmp_path, bpe_files):
    hf, _ = bpe_files
    vocab = json.loads((hf / "vocab.json").read_text())
    (tmp_path / "vocab.json").write_text(json.dumps(dict(list(vocab.items())[:100])))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(TokenizerError, match="only 100 base tokens"):
        load_gpt2_files(tmp_path)


def test_bad_tokenizer_folders_give_clear_errors(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        load_gpt2_files(tmp_path / "missing")
    with pytest.raises(TokenizerError, match="neither encoder.json \\+ vocab.bpe or vocab.json \\+ merges.txt"):
        load_gpt2_files(tmp_path)
    (tmp_path / "vocab.json").write_text("{not json")
    (tmp_path / "merges.txt").write_text("")
    with pytest.raises(TokenizerError, match="cannot read the GPT-2 BPE files"):
        load_gpt2_files(tmp_path)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "tokenizer.json").write_text('{"model": 3}')
    with pytest.raises(TokenizerError, match="cannot load the tokenizer"):
        load_tokenizer(corrupt)


def test_bpe_vocab_size_and_specs_are_validated(corpus_file):
    for bad in (100, 256, True, 2**21):
        with pytest.raises(TokenizerError, match="vocabulary size must be in \\[257") as info:
            train_bpe(["abc"], bad)
        assert set(info.value.errors) == {"vocab_size"}
    with pytest.raises(TokenizerError, match="integer vocabulary size"):
        resolve_tokenizer("bpe:lots", ["abc"])
    with pytest.raises(TokenizerError, match="unknown tokenizer"):
        resolve_tokenizer("sentencepiece:x")
    with pytest.raises(TokenizerError, match="needs the training texts"):
        resolve_tokenizer("bpe:300")
    assert len(resolve_tokenizer("bpe:300", [corpus_file.read_text()])) == 300


@pytest.mark.skipif(not (SHARED_GPT2 / "encoder.json").is_file(), reason="GPT-2 BPE files not in ../shared/data")
def test_real_gpt2_files():
    tokenizer = load_gpt2_files(SHARED_GPT2)
    assert len(tokenizer) == 50257 and tokenizer.eos_token_id == 50256
    assert tokenizer.encode("Hello world") == [15496, 995]
