"""Generation core: settings validation, exactly transformers' generate, repeatable seeded sampling, streamed text,
limits, stops, and the model cache's budget."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from models_zoo.core.generation import (
    GenerationError,
    GenerationLimits,
    LoadedModel,
    ModelCache,
    SamplingSettings,
    generate,
    load_model,
)
from models_zoo.core.tokenizers import train_bpe
from searches.core.arch import Architecture, build_model

PROMPT = "The old king sees"


def write_checkpoint(folder: Path, text: str, *, n_layer: int = 2, d_model: int = 32, context: int = 64) -> Path:
    """A GPT-2 checkpoint folder with its tokenizer, as the zoo stores one (random weights)."""
    tokenizer = train_bpe([text], 300)
    arch = Architecture.from_dict({"n_layer": n_layer, "d_model": d_model, "d_inner": 2 * d_model, "n_head": 2,
                                   "max_sequence_length": context, "vocab_size": len(tokenizer)})
    build_model(arch).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, corpus_file) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), corpus_file.read_text())


@pytest.fixture(scope="module")
def loaded(checkpoint) -> LoadedModel:
    return load_model(checkpoint)


def _direct(loaded: LoadedModel, **kwargs) -> list[int]:
    ids = loaded.tokenizer(PROMPT, return_tensors="pt")
    out = loaded.model.generate(**ids, pad_token_id=loaded.tokenizer.eos_token_id, **kwargs)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_loaded_model_is_in_eval_mode(loaded):
    assert not loaded.model.training and loaded.nbytes > 0


def test_greedy_is_exactly_transformers_generate_and_the_stream_adds_up(loaded):
    pieces: list[tuple[str, int]] = []
    result = generate(loaded, PROMPT, SamplingSettings(greedy=True, max_new_tokens=24),
                      on_text=lambda text, n: pieces.append((text, n)))
    assert result.token_ids == _direct(loaded, max_new_tokens=24, do_sample=False)
    assert "".join(t for t, _ in pieces) == result.text
    assert [n for _, n in pieces] == sorted(n for _, n in pieces) and pieces[-1][1] <= len(result.token_ids)
    assert result.prompt_tokens == len(loaded.tokenizer(PROMPT)["input_ids"])
    assert result.stopped_by in ("max_new_tokens", "eos")
    assert 0 < result.time_to_first_token_s <= result.generate_s


def test_seeded_sampling_repeats_and_matches_a_seeded_generate(loaded):
    settings = SamplingSettings(max_new_tokens=24, temperature=1.3, top_k=0, top_p=0.95, seed=7)
    pieces: list[str] = []
    first = generate(loaded, PROMPT, settings, on_text=lambda text, n: pieces.append(text))
    second = generate(loaded, PROMPT, settings)
    assert first.token_ids == second.token_ids
    # random weights draw byte tokens that split characters: held back, the pieces still add up to the text
    assert "".join(pieces) == first.text and "\ufffd" in first.text
    torch.manual_seed(7)
    assert first.token_ids == _direct(loaded, max_new_tokens=24, do_sample=True, temperature=1.3, top_k=0, top_p=0.95)
    other = generate(loaded, PROMPT, SamplingSettings(max_new_tokens=24, temperature=1.3, top_k=0, top_p=0.95, seed=8))
    assert other.token_ids != first.token_ids  # 24 draws from ~300 tokens at temperature 1.3


def test_time_limit_and_cancel_stop_early(loaded):
    limited = generate(loaded, PROMPT, SamplingSettings(greedy=True, max_new_tokens=40),
                       limits=GenerationLimits(time_limit_s=1e-9))
    assert limited.stopped_by == "time_limit" and len(limited.token_ids) == 1
    calls = []
    cancelled = generate(loaded, PROMPT, SamplingSettings(greedy=True, max_new_tokens=40),
                         should_stop=lambda: calls.append(1) or len(calls) >= 3)
    assert cancelled.stopped_by == "cancelled" and len(cancelled.token_ids) == 3


@pytest.mark.parametrize("data, field", [
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"max_new_tokens": 257}, "max_new_tokens"),
    ({"max_new_tokens": "5"}, "max_new_tokens"), ({"temperature": 0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"), ({"top_k": -1}, "top_k"), ({"top_k": 2.5}, "top_k"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"greedy": "yes"}, "greedy"), ({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"beams": 4}, "beams"),
    # integers beyond a float (float(10**400) raises OverflowError): a field error, not a 500
    ({"max_new_tokens": 10**400}, "max_new_tokens"), ({"top_k": -10**400}, "top_k"),
    ({"temperature": 10**400}, "temperature"), ({"top_p": 10**400}, "top_p"), ({"seed": 2**63}, "seed"),
    ({"top_k": 100_001}, "top_k"), ({"repetition_penalty": 101}, "repetition_penalty"),
])
def test_bad_settings_name_their_field(data, field):
    with pytest.raises(GenerationError) as caught:
        SamplingSettings.from_dict(data, GenerationLimits(max_new_tokens=256))
    assert set(caught.value.errors) == {field}


def test_prompt_limits(loaded):
    with pytest.raises(GenerationError, match="characters"):
        generate(loaded, "x" * 50, SamplingSettings(), limits=GenerationLimits(max_prompt_chars=10))
    with pytest.raises(GenerationError, match="tokens; at most 2"):
        generate(loaded, PROMPT, SamplingSettings(), limits=GenerationLimits(max_prompt_tokens=2))
    with pytest.raises(GenerationError) as caught:  # the context is 64 positions
        generate(loaded, PROMPT, SamplingSettings(max_new_tokens=64))
    assert set(caught.value.errors) == {"max_new_tokens"}
    with pytest.raises(GenerationError) as caught:
        generate(loaded, "The old king sees " * 20, SamplingSettings(max_new_tokens=1))
    assert set(caught.value.errors) == {"prompt"} and "no room" in caught.value.errors["prompt"]
    with pytest.raises(GenerationError, match="non-empty"):
        generate(loaded, "", SamplingSettings())


def test_model_cache_keeps_recent_models_within_its_budget(tmp_path):
    folders = []
    for name in "abc":
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"x")
        folders.append(tmp_path / name)
    loads: list[str] = []

    def loader(folder: Path) -> LoadedModel:
        loads.append(folder.name)
        return LoadedModel(model=None, tokenizer=None, nbytes=100, load_s=0.0)

    cache = ModelCache(budget_bytes=250, loader=loader)
    assert cache.get(folders[0])[1] is False and cache.get(folders[0])[1] is True
    cache.get(folders[1])
    cache.get(folders[0])  # a is now the most recent
    cache.get(folders[2])  # over budget: b, the least recently used, goes
    assert len(cache) == 2 and cache.used_bytes == 200
    assert cache.get(folders[0])[1] is True and cache.get(folders[1])[1] is False
    assert loads == ["a", "b", "c", "b"]
    time.sleep(0.01)
    (folders[1] / "model.safetensors").write_bytes(b"new weights")  # a replaced checkpoint is loaded afresh
    assert cache.get(folders[1])[1] is False and len(cache) == 2


def test_a_model_bigger_than_the_budget_is_still_served(tmp_path):
    cache = ModelCache(budget_bytes=10, loader=lambda f: LoadedModel(None, None, 100, 0.0))
    assert cache.get(tmp_path)[1] is False and len(cache) == 1
