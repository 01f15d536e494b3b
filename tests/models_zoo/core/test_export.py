"""Export to the zoo: a Hugging Face checkpoint that AutoModelForCausalLM loads and generates with, and its card."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models_zoo.core import export_model, model_from_checkpoint, train


@pytest.fixture(scope="module")
def trained_run(tiny, tmp_path_factory):
    from models_zoo.core import TrainConfig
    from searches.core.arch import Architecture

    tokenizer, data = tiny
    arch = Architecture(n_layer=2, d_model=32, d_inner=64, n_head=2, max_sequence_length=64)
    config = TrainConfig(seq_len=32, batch_size=8, max_steps=40, lr=3e-3, min_lr=3e-4, warmup_steps=4,
                         eval_interval=20, eval_batches=4, checkpoint_interval=20)
    run_dir = tmp_path_factory.mktemp("run")
    return arch, config, train(arch, tokenizer, data, config, run_dir), run_dir


MEASUREMENTS = [
    {"device": "cpu-2core", "batch": 1, "seq_len": 64, "latency_ms": 1.23456, "memory_mb": 12.5},
    {"device": "h100 | sxm", "latency_ms": 0.2, "peak_memory_mb": 40},
]


def test_export_loads_with_auto_classes_and_generates(trained_run, tmp_path):
    arch, _, result, run_dir = trained_run
    out = export_model(run_dir, tmp_path / "zoo" / "tiny", measurements=MEASUREMENTS)
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                               "tokenizer_config.json", "README.md"}
    assert not list((tmp_path / "zoo").glob(".*"))  # the temporary folder was renamed into place

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.n_embd == 32 and model.config.n_inner == 64 and model.config.vocab_size == len(tokenizer)
    assert tokenizer.model_max_length == 64
    reference, _ = model_from_checkpoint(run_dir)
    ids = tokenizer("The old king", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)  # the checkpoint's weights exactly
    generated = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert generated.shape == (1, ids["input_ids"].shape[1] + 12)
    text = tokenizer.decode(generated[0])
    assert text.startswith("The old king") and len(text) > len("The old king")


def test_model_card_describes_the_run(trained_run, tmp_path):
    arch, _, result, run_dir = trained_run
    card = (export_model(run_dir, tmp_path / "m", measurements=MEASUREMENTS,
                         data_description="test corpus") / "README.md").read_text()
    trained = result.arch
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-generation\n")
    assert f"archid (as trained): `{trained.archid}`" in card
    assert f"archid (as searched): `{arch.archid}`" in card  # vocab 50257 -> the tokenizer's
    assert f"Non-embedding parameters (the LTS proxy): {trained.non_embedding_params:,}" in card
    assert "| 2 | 32 | 64 | 2 | 361 | 64 | 0.0 |" in card
    assert "Source: test corpus" in card and "Budget: 40 steps" in card
    assert f"perplexity {result.val_perplexity:.2f}" in card and "bits per character" in card
    assert "| device | batch | seq_len | latency_ms | memory_mb | peak_memory_mb |" in card
    assert "| cpu-2core | 1 | 64 | 1.235 | 12.5 |  |" in card
    assert "| h100 \\| sxm |  |  | 0.2 |  | 40 |" in card


def test_export_refuses_to_overwrite_unless_asked(trained_run, tmp_path):
    _, _, _, run_dir = trained_run
    out = export_model(run_dir, tmp_path / "m")
    with pytest.raises(FileExistsError):
        export_model(run_dir, out)
    (out / "stale.txt").write_text("from an older export")
    export_model(run_dir, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_stopped_run_exports_and_says_so(tiny, trained_run, tmp_path):
    tokenizer, data = tiny
    arch, config, _, _ = trained_run
    seen: list[int] = []
    train(arch, tokenizer, data, replace(config, checkpoint_interval=0), tmp_path / "run",
          on_progress=lambda p: seen.append(p.step), should_stop=lambda: bool(seen) and seen[-1] >= 10)
    card = (export_model(tmp_path / "run", tmp_path / "out") / "README.md").read_text()
    assert "stopped before the end of its budget" in card and "Not evaluated on the whole validation part" in card
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.n_layer == 2
