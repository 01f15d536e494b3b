"""The trainer: settings, schedule, loss going down, checkpoints written atomically, exact resume, stop and SIGKILL."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models_zoo.core import (
    BUDGET_KEYS,
    CHECKPOINT_NAME,
    DataError,
    ResumeError,
    TokenData,
    TokenizerError,
    TrainConfig,
    TrainConfigError,
    learning_rate,
    load_checkpoint,
    model_from_checkpoint,
    save_tokenizer,
    train,
    trainer,
)
from models_zoo.core import trainer as trainer_module

ROOT = Path(__file__).resolve().parents[3]


def losses(history, after: int = 0) -> dict[int, float]:
    return {h["step"]: h["train_loss"] for h in history if h["train_loss"] is not None and h["step"] > after}


def val_losses(history) -> list[tuple[int, float]]:
    return [(h["step"], h["val_loss"]) for h in history if h["val_loss"] is not None]


@pytest.fixture(scope="module")
def resume_setup(tiny, tmp_path_factory):
    """An uninterrupted 30-step run with 0.1 dropout (so the torch RNG matters), checkpoint every 10 steps."""
    from searches.core.arch import Architecture

    tokenizer, data = tiny
    arch = Architecture(n_layer=2, d_model=32, d_inner=64, n_head=2, max_sequence_length=64)
    config = TrainConfig(seq_len=32, batch_size=8, max_steps=30, lr=3e-3, min_lr=3e-4, warmup_steps=4, dropout=0.1,
                         eval_interval=10, eval_batches=4, checkpoint_interval=10, log_interval=1)
    run_dir = tmp_path_factory.mktemp("reference")
    result = train(arch, tokenizer, data, config, run_dir)
    model, _ = model_from_checkpoint(run_dir)
    return arch, config, result, model.state_dict()


# ------------------------------------------------------------------------------------------------ settings


def test_config_validation_names_every_bad_field():
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(lr=0, min_lr=-1, betas=(1.0, 0.9), seq_len=0, batch_size=2.5, dropout=1.0, grad_clip=-1)
    assert set(info.value.errors) == {"lr", "min_lr", "betas", "seq_len", "batch_size", "dropout", "grad_clip",
                                      "max_steps"}
    assert "set a budget" in info.value.errors["max_steps"]
    with pytest.raises(TrainConfigError, match="must not exceed lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3, max_steps=1)
    with pytest.raises(TrainConfigError) as info:
        TrainConfig.from_dict({"max_steps": 5, "learning_rate": 1e-3})
    assert info.value.errors == {"learning_rate": "unknown training setting"}
    config = TrainConfig(max_tokens=10_000, max_minutes=2.5, batch_size=4, seq_len=64, grad_accum=2)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.total_steps == math.ceil(10_000 / 512) and config.warmup == 2


def test_the_budget_keys_are_the_settings_a_run_needs_one_of():
    """BUDGET_KEYS (the pages' "no limit", a proxy check's refused keys, the API's top-level budget) are exactly
    TrainConfig's limits: each alone is a budget, none is an error."""
    assert {f.name for f in fields(TrainConfig) if f.default is None} == set(BUDGET_KEYS)
    for key in BUDGET_KEYS:
        assert getattr(TrainConfig.from_dict({key: 1}), key) == 1
    with pytest.raises(TrainConfigError) as info:
        TrainConfig()
    assert "set a budget: max_steps, max_tokens or max_minutes" in info.value.errors["max_steps"]


@pytest.mark.parametrize(("name", "limit"), [
    ("max_steps", trainer.MAX_STEPS), ("max_tokens", trainer.MAX_TOKENS), ("warmup_steps", trainer.MAX_STEPS),
    ("eval_interval", trainer.MAX_STEPS), ("checkpoint_interval", trainer.MAX_STEPS),
    ("log_interval", trainer.MAX_STEPS), ("seed", 2**32 - 1), ("seq_len", 131_072),
    ("batch_size", trainer.MAX_BATCH_TOKENS), ("grad_accum", trainer.MAX_GRAD_ACCUM),
    ("eval_batches", trainer.MAX_EVAL_BATCHES),
])
def test_integer_settings_have_upper_bounds(name: str, limit: int) -> None:
    """The issue: max_steps 1e20 reached the database (integer out of range, a 500)."""
    base = {"max_minutes": 1.0, "batch_size": 1, "seq_len": 1, "grad_accum": trainer.MAX_GRAD_ACCUM}
    if name == "max_tokens":  # at most MAX_STEPS steps: 10**15 tokens need >= 465,662 tokens a step
        base.update(seq_len=1024, batch_size=1024)
    assert getattr(TrainConfig.from_dict({**base, name: limit}), name) == limit
    with pytest.raises(TrainConfigError) as info:
        TrainConfig.from_dict({**base, name: limit + 1})
    assert info.value.errors[name] == f"must be at most {limit:,}, got {limit + 1:,}"


def test_budget_and_batch_bounds_that_combine_fields() -> None:
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(max_tokens=10**12, batch_size=1, seq_len=1)
    assert info.value.errors == {"max_tokens": "1,000,000,000,000 tokens at 1 a step are 1,000,000,000,000 steps, "
                                               "more than 2,147,483,647: raise batch_size, seq_len or grad_accum"}
    with pytest.raises(TrainConfigError) as info:
        TrainConfig(max_steps=1, batch_size=1025, seq_len=1024)
    assert info.value.errors == {"batch_size": "batch_size x seq_len must be at most 1,048,576 tokens, got 1,025 x 1,024"}
    assert TrainConfig(max_minutes=trainer.MAX_MINUTES, grad_clip=trainer.MAX_GRAD_CLIP).max_minutes == 527_040
    for value in (2 * trainer.MAX_GRAD_CLIP, 10**400, math.inf):  # MAX_GRAD_CLIP > MAX_MINUTES
        with pytest.raises(TrainConfigError) as info:
            TrainConfig(max_minutes=value, grad_clip=value)
        assert set(info.value.errors) == {"max_minutes", "grad_clip"}


def test_learning_rate_warms_up_then_decays_to_min_lr():
    config = TrainConfig(max_steps=1000, warmup_steps=100, lr=6e-4, min_lr=6e-5)
    warm = [learning_rate(config, s, s / 1000) for s in range(100)]
    assert all(a < b for a, b in zip(warm[:-1], warm[1:], strict=True)) and warm[-1] < 6e-4
    assert learning_rate(config, 100, 0.1) == pytest.approx(6e-5 + 0.5 * 5.4e-4 * (1 + math.cos(0.1 * math.pi)))
    assert learning_rate(config, 999, 1.0) == pytest.approx(6e-5)
    short = TrainConfig(max_steps=50, warmup_steps=100)
    assert short.warmup == 5  # capped at a tenth of the run, so a short run still decays


# ------------------------------------------------------------------------------------------------ training


def test_training_lowers_the_loss_and_reports_progress(tiny, tiny_arch, make_config, tmp_path):
    tokenizer, data = tiny
    reports = []
    result = train(tiny_arch, tokenizer, data, make_config(), tmp_path, on_progress=reports.append)
    assert result.status == "completed" and result.step == 40 and result.tokens_seen == 40 * 8 * 32
    assert result.arch == replace(tiny_arch, vocab_size=len(tokenizer))
    train_losses = list(losses(result.history).values())
    assert train_losses[0] == pytest.approx(math.log(len(tokenizer)), abs=0.5)  # a fresh model guesses uniformly
    assert np.mean(train_losses[-5:]) < train_losses[0] - 2.0
    vals = val_losses(result.history)
    assert [step for step, _ in vals] == [10, 20, 30, 40] and vals[-1][1] < vals[0][1]
    assert result.val_perplexity == pytest.approx(math.exp(result.val_loss))
    assert result.best_val_loss <= result.val_loss + 1e-9
    assert [r.to_dict() for r in reports] == result.history
    last_train = [r for r in reports if r.event == "train"][-1]
    assert last_train.tokens_per_s > 0 and last_train.eta_s is not None and last_train.total_steps == 40
    assert [(r.step, r.event) for r in reports if r.checkpoint] == [(10, "eval"), (20, "eval"), (30, "eval"), (40, "done")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME, "tokenizer"]


def test_gradient_accumulation_and_minutes_budget(tiny, tiny_arch, make_config, tmp_path):
    tokenizer, data = tiny
    result = train(tiny_arch, tokenizer, data, make_config(max_steps=3, grad_accum=2), tmp_path / "accum")
    assert result.step == 3 and result.tokens_seen == 3 * 2 * 8 * 32
    timed = train(tiny_arch, tokenizer, data, make_config(max_steps=None, max_minutes=0.01), tmp_path / "timed")
    assert timed.status == "completed" and timed.step >= 1 and timed.elapsed_s >= 0.6 and timed.total_steps is None


# ------------------------------------------------------------------------------------------------ resume


def test_stop_then_resume_is_bit_exact(tiny, resume_setup, tmp_path):
    tokenizer, data = tiny
    arch, config, reference, reference_weights = resume_setup
    seen: list[int] = []
    stopped = train(arch, tokenizer, data, config, tmp_path, on_progress=lambda p: seen.append(p.step),
                    should_stop=lambda: bool(seen) and seen[-1] >= 17)
    assert stopped.status == "stopped" and stopped.step == 17
    assert load_checkpoint(tmp_path)["step"] == 17  # the stop wrote a checkpoint: nothing is lost

    resumed = train(arch, tokenizer, data, config, tmp_path)
    assert resumed.status == "completed" and resumed.step == 30 and resumed.resumed_from == 17
    # The same batches, dropout masks and learning rates: every later loss is identical to the uninterrupted run's.
    assert losses(resumed.history, after=17) == losses(reference.history, after=17)
    assert val_losses(resumed.history) == val_losses(reference.history)
    model, _ = model_from_checkpoint(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reference_weights[name]), name


def test_finished_run_is_not_trained_again(tiny, resume_setup, tmp_path):
    tokenizer, data = tiny
    arch, config, _, _ = resume_setup
    first = train(arch, tokenizer, data, replace(config, max_steps=5, checkpoint_interval=0), tmp_path)
    reports = []
    again = train(arch, tokenizer, data, replace(config, max_steps=5, checkpoint_interval=0), tmp_path,
                  on_progress=reports.append)
    assert again.step == 5 and again.val_loss == first.val_loss and reports == [] and again.resumed_from == 5


def test_resume_refuses_a_different_run(tiny, resume_setup, tmp_path):
    tokenizer, data = tiny
    arch, config, _, _ = resume_setup
    short = replace(config, max_steps=3, checkpoint_interval=1)
    seen: list[int] = []
    train(arch, tokenizer, data, short, tmp_path, on_progress=lambda p: seen.append(p.step),
          should_stop=lambda: bool(seen))
    with pytest.raises(ResumeError) as info:
        train(arch, tokenizer, data, replace(short, lr=1e-3, seed=1), tmp_path)
    assert set(info.value.errors) == {"lr", "seed"}
    other = TokenData(data.train[::-1].copy(), data.val, data.description, data.val_chars)
    with pytest.raises(ResumeError, match="token data differs"):
        train(arch, tokenizer, other, short, tmp_path)
    with pytest.raises(ResumeError, match="n_layer"):
        train(replace(arch, n_layer=1), tokenizer, data, short, tmp_path)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tiny, resume_setup, tmp_path):
    """A worker process killed with SIGKILL between checkpoints: the run resumes from the last one, ends at the same
    step count, and its losses continue the killed run's (here: equal the uninterrupted run's)."""
    tokenizer, data = tiny
    arch, config, reference, _ = resume_setup
    save_tokenizer(tokenizer, tmp_path / "tok")
    np.savez(tmp_path / "data.npz", train=data.train, val=data.val)
    run_dir = tmp_path / "run"
    child = f"""
import json, sys, time, numpy as np, torch
torch.set_num_threads(1)  # as in this process (conftest): the same reductions, so the same bits
from models_zoo.core import TokenData, TrainConfig, load_tokenizer, train
from searches.core.arch import Architecture
arrays = np.load({str(tmp_path / "data.npz")!r})
data = TokenData(arrays["train"], arrays["val"], {data.description!r}, {data.val_chars})
def report(p):
    print(json.dumps(p.to_dict()), flush=True)
    if p.step == 13:
        time.sleep(120)  # mid-run, 3 steps after the checkpoint at 10 and 2 before the next: killed here
train(Architecture.from_dict({arch.to_dict()!r}), load_tokenizer({str(tmp_path / "tok")!r}), data,
      TrainConfig.from_dict({config.to_dict()!r}), {str(run_dir)!r}, on_progress=report)
"""
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"})
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    import json

    killed_history = []
    try:
        for line in proc.stdout:
            killed_history.append(json.loads(line))
            if killed_history[-1]["step"] == 13:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "the child ended before it was killed"
    assert load_checkpoint(run_dir)["step"] == 10
    assert not list(run_dir.glob(f".{CHECKPOINT_NAME}.*"))

    resumed = train(arch, tokenizer, data, config, run_dir)
    assert resumed.step == 30 and resumed.resumed_from == 10 and resumed.status == "completed"
    new = losses(resumed.history, after=10)
    # Continuing, not restarting: the first new loss is the killed run's step-11 loss, far below a fresh model's.
    assert new[11] == pytest.approx(losses(killed_history)[11], rel=1e-6)
    assert new[11] < losses(killed_history)[1] - 0.5
    # Across processes too the trajectory is the uninterrupted one, bit for bit (same torch build, CPU).
    assert new == losses(reference.history, after=10)


def test_checkpoint_write_is_atomic(tiny, resume_setup, tmp_path, monkeypatch):
    tokenizer, data = tiny
    arch, config, _, _ = resume_setup
    short = replace(config, max_steps=6, checkpoint_interval=3, eval_interval=0)
    real_save = torch.save
    calls = {"n": 0}

    def torn_save(obj, fh, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies half-written
            fh.write(b"PK\x03\x04 half a zip file")
            raise OSError(28, "No space left on device")
        return real_save(obj, fh, *args, **kwargs)

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        train(arch, tokenizer, data, short, tmp_path)
    assert load_checkpoint(tmp_path)["step"] == 3  # the previous checkpoint, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME, "tokenizer"]  # no partial file
    monkeypatch.setattr(torch, "save", real_save)
    (tmp_path / f".{CHECKPOINT_NAME}.abc.tmp").write_bytes(b"left by a killed process")
    assert train(arch, tokenizer, data, short, tmp_path).step == 6
    assert not list(tmp_path.glob(".*.tmp"))


def test_unreadable_checkpoint_is_a_clear_error(tiny, resume_setup, tmp_path):
    tokenizer, data = tiny
    arch, config, _, _ = resume_setup
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"garbage")
    with pytest.raises(ResumeError, match="not a readable checkpoint"):
        train(arch, tokenizer, data, config, tmp_path)


# ------------------------------------------------------------------------------------------------ bad input


def test_bad_inputs_fail_before_training(tiny, tiny_arch, make_config, tmp_path):
    from transformers import GPT2Tokenizer

    tokenizer, data = tiny
    with pytest.raises(TokenizerError, match="0 base tokens"):
        train(tiny_arch, GPT2Tokenizer(vocab_file="vocab.json", merges_file="merges.txt"), data, make_config(), tmp_path)
    with pytest.raises(TrainConfigError, match="exceeds the architecture's max_sequence_length 64"):
        train(tiny_arch, tokenizer, data, make_config(seq_len=128), tmp_path)
    alien = TokenData(np.full(5000, 9999, dtype=np.uint16), data.val, "", 0)
    with pytest.raises(DataError, match="outside the tokenizer's"):
        train(tiny_arch, tokenizer, alien, make_config(), tmp_path)
    short_val = TokenData(data.train, data.val[:20], "", 0)
    with pytest.raises(DataError, match="validation text has 20 tokens"):
        train(tiny_arch, tokenizer, short_val, make_config(), tmp_path)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    states = trainer_module._rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    trainer_module._atomic_save({"rng": states}, tmp_path / "rng.pt")
    trainer_module._set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_loop_state_round_trips_through_a_checkpoint_and_thins_its_history():
    state = trainer.LoopState()
    for step in range(1, 1201):
        state.add_step(64, 2.0)
        mean = state.take_mean_loss()
        state.record(trainer.Progress(step=step, total_steps=1200, tokens_seen=state.tokens_seen, train_loss=mean,
                                      val_loss=1.5 if step % 100 == 0 else None, val_perplexity=None, lr=1e-3,
                                      tokens_per_s=1.0, elapsed_s=float(step), eta_s=None))
    # A 1,200-report run keeps at most HISTORY_POINTS points, the evaluations and the last one among them.
    assert len(state.history) <= trainer.HISTORY_POINTS and state.history[-1]["step"] == 1200
    assert {p["step"] for p in state.history if p["val_loss"] is not None} == set(range(100, 1201, 100))
    restored = trainer.LoopState.from_checkpoint({"format": 1, "model": {}, **state.to_checkpoint()})
    assert restored == state and restored.step == 1200 and restored.tokens_seen == 1200 * 64
    assert restored.take_mean_loss() is None  # every loss was reported
