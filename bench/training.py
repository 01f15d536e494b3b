"""Training benchmark: throughput of ``train()`` against a bare PyTorch loop (and the Hugging Face Trainer when
``accelerate`` is importable), then validation perplexity after a fixed time budget for three architectures.

    python bench/training.py                       # ~15 min on 2 CPU cores; writes bench/results/training.md
    python bench/training.py --quick               # ~2 min smoke run (not for quoting)
    pip install --target /tmp/accel --no-deps accelerate==1.15.0   # optional, outside the venv:
    PYTHONPATH=/tmp/accel python bench/training.py                  # adds the Hugging Face Trainer row

Throughput: the same model, batch, sequence length, optimizer (AdamW, decay on 2-D weights), learning rate and
gradient clipping in each contender; tokens/s over steps ``warmup+1 .. steps`` (the first steps warm up the
allocator), no evaluation or checkpoint inside the timed region (train() reports every step through on_progress,
which is counted). The contenders alternate within each repetition and the median over repetitions is quoted, because
these machines are shared and noisy.

Perplexity: tinyshakespeare (../shared/data), a byte-level BPE of 8,192 tokens trained on its first 90%, validation on
the last 10%, each architecture trained for the same number of minutes through train() with its usual interval
evaluation and checkpoints; the final validation loss is over the whole validation part.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
import torch.nn.functional as F

from models_zoo.core import LocalSource, TokenData, TrainConfig, prepare_data, train
from searches.core.arch import Architecture, build_model

DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
# From the "tiny" search-space preset (searches/core/space.py: n_layer 1-3, d_model 32-128, d_inner 64-256,
# vocabulary 8,192, sequence 128): its smallest useful, a middle and its largest architecture.
ARCHS = {
    "small": Architecture(n_layer=1, d_model=64, d_inner=128, n_head=2, vocab_size=8192, max_sequence_length=128),
    "medium": Architecture(n_layer=2, d_model=96, d_inner=192, n_head=4, vocab_size=8192, max_sequence_length=128),
    "large": Architecture(n_layer=3, d_model=128, d_inner=256, n_head=4, vocab_size=8192, max_sequence_length=128),
}
THROUGHPUT_ARCH = "large"
SEQ_LEN, BATCH = 128, 16


def _optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    params = list(model.parameters())
    return torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def bare_loop(arch: Architecture, data: TokenData, steps: int, warmup: int) -> float:
    """nanoGPT's loop with random-offset batches: the reference a person would write by hand."""
    model = build_model(arch, seed=0, resid_pdrop=0.0, embd_pdrop=0.0).train()
    opt = _optimizer(model, 6e-4)
    tokens = torch.from_numpy(data.train.astype(np.int64))
    gen = torch.Generator().manual_seed(0)
    stamps = []
    for _ in range(steps):
        ix = torch.randint(len(tokens) - SEQ_LEN - 1, (BATCH,), generator=gen)
        batch = torch.stack([tokens[i : i + SEQ_LEN + 1] for i in ix.tolist()])
        logits = model(input_ids=batch[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        stamps.append(time.perf_counter())
    return (steps - warmup) * BATCH * SEQ_LEN / (stamps[-1] - stamps[warmup - 1])


def system_loop(arch: Architecture, tokenizer: Any, data: TokenData, steps: int, warmup: int) -> float:
    stamps: dict[int, float] = {}
    config = TrainConfig(seq_len=SEQ_LEN, batch_size=BATCH, max_steps=steps, warmup_steps=0, eval_interval=0,
                         checkpoint_interval=0, log_interval=1)

    def on_progress(p: Any) -> None:
        if p.event == "train":
            stamps[p.step] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="bench-train-") as run_dir:
        train(arch, tokenizer, data, config, run_dir, on_progress=on_progress)
    return (steps - warmup) * BATCH * SEQ_LEN / (stamps[steps] - stamps[warmup])


def hf_trainer_loop(arch: Architecture, data: TokenData, steps: int, warmup: int) -> float | None:
    try:
        import accelerate  # noqa: F401 - only its presence: the HF Trainer needs it
        from transformers import Trainer, TrainerCallback, TrainingArguments
    except ImportError:
        return None

    class Windows(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.tokens = torch.from_numpy(data.train.astype(np.int64))
            self.starts = torch.randint(len(self.tokens) - SEQ_LEN - 1, (steps * BATCH,),
                                        generator=torch.Generator().manual_seed(0))

        def __len__(self) -> int:
            return len(self.starts)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            # The model shifts the labels itself: seq_len tokens in, like the others (seq_len - 1 predicted).
            window = self.tokens[self.starts[i] : self.starts[i] + SEQ_LEN]
            return {"input_ids": window, "labels": window}

    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    model = build_model(arch, seed=0, resid_pdrop=0.0, embd_pdrop=0.0, use_cache=False).train()
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as out:
        args = TrainingArguments(
            output_dir=out, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=6e-4, weight_decay=0.1,
            adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, lr_scheduler_type="cosine", warmup_steps=0,
            logging_strategy="no", save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, disable_tqdm=True, seed=0)
        Trainer(model=model, args=args, train_dataset=Windows(), callbacks=[Clock()]).train()
    return (steps - warmup) * BATCH * SEQ_LEN / (stamps[-1] - stamps[warmup - 1])


def throughput(tokenizer: Any, data: TokenData, reps: int, steps: int, warmup: int) -> dict[str, list[float]]:
    arch = replace(ARCHS[THROUGHPUT_ARCH], vocab_size=len(tokenizer))  # as train() builds it
    contenders: dict[str, Callable[[], float | None]] = {
        "bare PyTorch loop": lambda: bare_loop(arch, data, steps, warmup),
        "train() (models_zoo.core)": lambda: system_loop(arch, tokenizer, data, steps, warmup),
        "Hugging Face Trainer": lambda: hf_trainer_loop(arch, data, steps, warmup),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for rep in range(reps):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))  # no contender always goes first
        for name in order:
            value = contenders[name]()
            if value is not None:
                results[name].append(value)
                print(f"  rep {rep + 1}: {name}: {value:,.0f} tokens/s", flush=True)
    return {k: v for k, v in results.items() if v}


def perplexity(tokenizer: Any, data: TokenData, minutes: float) -> list[dict[str, Any]]:
    rows = []
    for name, arch in ARCHS.items():
        config = TrainConfig(seq_len=SEQ_LEN, batch_size=BATCH, max_minutes=minutes, lr=2e-3, min_lr=2e-4,
                             warmup_steps=100, eval_interval=200, eval_batches=20, checkpoint_interval=500)
        with tempfile.TemporaryDirectory(prefix="bench-ppl-") as run_dir:
            started = time.perf_counter()
            result = train(arch, tokenizer, data, config, run_dir)
            wall = time.perf_counter() - started
        bpc = result.val_loss * len(data.val) / (data.val_chars * math.log(2))
        rows.append({"name": name, "arch": result.arch, "steps": result.step, "tokens": result.tokens_seen,
                     "tokens_per_s": result.tokens_per_s, "val_loss": result.val_loss,
                     "val_ppl": result.val_perplexity, "bpc": bpc, "wall_s": wall})
        print(f"  {name}: {result.step} steps, val loss {result.val_loss:.3f}, ppl {result.val_perplexity:.1f}, "
              f"{bpc:.3f} bits/char", flush=True)
    return rows


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {platform.platform()}"


def versions() -> str:
    import tokenizers
    import transformers

    try:
        import accelerate

        accel = f", accelerate {accelerate.__version__}"
    except ImportError:
        accel = ", accelerate not installed (no HF Trainer row)"
    return (f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"tokenizers {tokenizers.__version__}, numpy {np.__version__}{accel}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="2 reps of 15 steps, 0.3-minute budgets")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "training.md")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.steps, args.warmup, args.minutes = 2, 15, 5, 0.3
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                                    else sys.argv[0]] + sys.argv[1:])
    if os.environ.get("PYTHONPATH"):  # how accelerate was made importable for the HF Trainer row
        command = f"PYTHONPATH={os.environ['PYTHONPATH']} {command}"
    load_before = os.getloadavg()

    started = time.perf_counter()
    tokenizer, data = prepare_data(LocalSource(str(DATA)), "bpe:8192", val_fraction=0.1)
    prep_s = time.perf_counter() - started
    print(f"data: {len(data.train):,} train / {len(data.val):,} validation tokens, tokenizer {len(tokenizer):,} "
          f"tokens ({prep_s:.1f} s)", flush=True)
    print("throughput:", flush=True)
    speed = throughput(tokenizer, data, args.reps, args.steps, args.warmup)
    print("perplexity:", flush=True)
    rows = perplexity(tokenizer, data, args.minutes)
    load_after = os.getloadavg()

    bare = statistics.median(speed["bare PyTorch loop"])
    arch = ARCHS[THROUGHPUT_ARCH]
    lines = [
        "# Training benchmark",
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        f"- Load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f} (1 min; the machine is shared)",
        f"- Data: tinyshakespeare, {len(data.train):,} train / {len(data.val):,} validation tokens (last 10% of the "
        f"characters); tokenizer: byte-level BPE trained on the train part, {len(tokenizer):,} tokens "
        f"(prepared in {prep_s:.1f} s)",
        "",
        "## Throughput: train() against a bare PyTorch loop",
        "",
        f"Architecture `{THROUGHPUT_ARCH}` {_arch(arch)}; batch {BATCH} x {SEQ_LEN} tokens, AdamW (decay 0.1 on 2-D "
        f"weights), clip 1.0, fp32 CPU. Tokens/s over steps {args.warmup + 1}-{args.steps}, {args.reps} alternating "
        "repetitions, median quoted.",
        "",
        "| contender | median tokens/s | runs (tokens/s) | vs bare loop |",
        "|---|---|---|---|",
    ]
    for name, values in speed.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | {median / bare:.1%} |")
    lines += [
        "",
        "## Validation perplexity after a fixed budget",
        "",
        f"{args.minutes:g} minutes of wall time each through train() (interval evaluation of 20 batches every 200 "
        f"steps and a checkpoint every 500 count against it); batch {BATCH} x {SEQ_LEN}, lr 2e-3 -> 2e-4 (cosine over "
        "the time budget, 100 warm-up steps), weight decay 0.1, no dropout. Final loss over the whole validation part. "
        "Architectures from the `tiny` search-space preset with the vocabulary of the tokenizer.",
        "",
        "| arch | n_layer / d_model / d_inner / n_head | non-embedding params | archid | steps | tokens | tokens/s "
        "| val loss | val perplexity | bits/char |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r["arch"]
        lines.append(f"| {r['name']} | {a.n_layer} / {a.d_model} / {a.d_inner} / {a.n_head} | "
                     f"{a.non_embedding_params:,} | `{a.archid}` | {r['steps']:,} | {r['tokens']:,} | "
                     f"{r['tokens_per_s']:,.0f} | {r['val_loss']:.3f} | {r['val_ppl']:.1f} | {r['bpc']:.3f} |")
    lines.append("")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.output}")


def _arch(arch: Architecture) -> str:
    return (f"({arch.n_layer} layers, d_model {arch.d_model}, d_inner {arch.d_inner}, {arch.n_head} heads, vocabulary "
            f"{arch.vocab_size:,}; {arch.non_embedding_params:,} non-embedding parameters)")


if __name__ == "__main__":
    main()
