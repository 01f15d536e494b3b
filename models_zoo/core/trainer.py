"""Train a GPT-2 decoder on a token array: a plain PyTorch loop with checkpoints that resume exactly.

One call, ``train(arch, tokenizer, data, config, run_dir)``, trains or resumes. The loop is nanoGPT's: AdamW with
weight decay on 2-D weights only, linear warm-up then cosine decay to ``min_lr``, gradient clipping, gradient
accumulation. A plain loop rather than the Hugging Face Trainer: measured on the same model and batch they run at
the same speed (bench/results/training.md: 96% and 95% of a bare loop, within the noise of a shared 2-core machine),
while the Trainer needs ``accelerate`` (not in requirements.txt) and has no token or wall-time budget.

Every ``checkpoint_interval`` steps (and on stop, and at the end) ``run_dir/checkpoint.pt`` is rewritten: weights,
optimizer, the schedule's inputs (step, elapsed seconds), the sampler position, the torch/numpy/python RNG states,
the best validation loss, the config and the report history. It is written to a temporary file in the same folder,
fsynced and renamed over the old one (nanoGPT train.py), so a worker killed at any instant leaves either the old or
the new checkpoint, never a torn one. ``train`` on a ``run_dir`` that holds a checkpoint continues from it: same
batches, same dropout masks, same learning rates; on CPU the continued run is bit-identical to an uninterrupted one
(tests/models_zoo/core/test_trainer.py).
"""
from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from searches.core.arch import ARCH_LIMITS, Architecture, ConfigError
from searches.core.evolution import MAX_SEED

from .data import BatchSampler, DataError, TokenData, eval_windows
from .tokenizers import load_tokenizer, save_tokenizer, validate_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

__all__ = [
    "BUDGET_KEYS",
    "CHECKPOINT_NAME",
    "HISTORY_POINTS",
    "LoopState",
    "MAX_BATCH_TOKENS",
    "MAX_MINUTES",
    "MAX_STEPS",
    "MAX_TOKENS",
    "Progress",
    "ResumeError",
    "TOKENIZER_DIR",
    "TrainConfig",
    "TrainConfigError",
    "TrainResult",
    "evaluate",
    "learning_rate",
    "load_checkpoint",
    "model_from_checkpoint",
    "saved_tokenizer",
    "thin_history",
    "train",
]

CHECKPOINT_NAME = "checkpoint.pt"
TOKENIZER_DIR = "tokenizer"
# Bumped when the checkpoint layout changes; an older file is refused rather than half-read.
_CHECKPOINT_FORMAT = 1
# A run's history keeps at most this many progress points (older training-only points are thinned first): a
# 100,000-step run reporting every 10 steps would otherwise store 10,000 points (~1 MB) in every checkpoint and in
# the database row rewritten every 2 s.
HISTORY_POINTS = 500


# Upper bounds of the training settings. Steps land in PositiveIntegerFields (TrainingRun.step, total_steps): at most
# 2**31 - 1. Tokens land in BigIntegerFields (tokens_seen, a proxy check's budget, doubled with compare_budget):
# 10**15 is 60x the largest published pre-training runs (Llama 3: 1.5e13 tokens) and far below 2**63.
MAX_STEPS = 2**31 - 1
MAX_TOKENS = 10**15
MAX_MINUTES = 366 * 24 * 60  # a year of wall time; a run resumes across workers, so it is not one task's limit
# Tokens of one micro-batch (batch_size x seq_len): 2**20, as the profiler's forward; GPT-3 took 3.2M tokens a step
# across hundreds of GPUs, and grad_accum multiplies the micro-batch (at most MAX_GRAD_ACCUM times).
MAX_BATCH_TOKENS = 2**20
MAX_GRAD_ACCUM = 4096
MAX_EVAL_BATCHES = 10_000
MAX_GRAD_CLIP = 1e6  # a norm clip that large never clips: 0 says so (disabled)
# TrainConfig's budget: a run ends at the first of these limits that is set; one at least must be, None is no limit.
BUDGET_KEYS = ("max_steps", "max_tokens", "max_minutes")


class TrainConfigError(ConfigError):
    """Training settings are invalid. ``errors`` maps field name -> message."""


class ResumeError(ConfigError):
    """``run_dir`` holds a checkpoint of a different run (other config, architecture, data or tokenizer)."""


def _finite(value: int | float) -> bool:
    """False for inf, nan and integers beyond a float (math.isfinite(10**400) raises OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class TrainConfig:
    """Training settings. Defaults follow nanoGPT's GPT-2 recipe (lr 6e-4, weight decay 0.1, betas 0.9/0.95,
    min_lr = lr / 10, clip 1.0). The budget is whichever of max_steps, max_tokens, max_minutes ends first (at
    least one is required); the cosine schedule runs over that budget.
    """

    lr: float = 6e-4
    min_lr: float = 6e-5
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    # Steps of linear warm-up; capped at a tenth of a step- or token-budgeted run so a 50-step run still decays.
    warmup_steps: int = 100
    grad_clip: float = 1.0  # 0 disables clipping
    seq_len: int = 256
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int | None = None
    max_tokens: int | None = None
    max_minutes: float | None = None
    # 0 disables interval evaluation / checkpoints: the final evaluation and checkpoint still happen.
    eval_interval: int = 250
    eval_batches: int = 20
    checkpoint_interval: int = 250
    log_interval: int = 10
    # GPT-2 trains with 0.1 residual/embedding dropout; short runs that see the data about once do better without
    # (nanoGPT: "for pretraining 0 is good"). Attention dropout is the architecture's dropatt.
    dropout: float = 0.0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))

        def number(name: str, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                errors[name] = f"must be a number, got {value!r}"
            elif not _finite(value):
                errors[name] = f"must be a finite number of at most {high:g}, got {value!r}"
            elif value < low or (low_open and value == low) or value > high or (high_open and value == high):
                lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
                errors[name] = f"must be in {lo}{low:g}, {high:g}{hi}, got {value!r}"

        def integer(name: str, low: int, high: int, *, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int):
                errors[name] = f"must be an integer, got {value!r}"
            elif value < low:
                errors[name] = f"must be at least {low}, got {value}"
            elif value > high:
                errors[name] = f"must be at most {high:,}, got {value:,}"

        number("lr", 0.0, 1.0, low_open=True)
        number("min_lr", 0.0, 1.0)
        number("weight_decay", 0.0, 10.0)
        number("grad_clip", 0.0, MAX_GRAD_CLIP)
        number("dropout", 0.0, 1.0, high_open=True)
        for name in ("warmup_steps", "eval_interval", "checkpoint_interval"):
            integer(name, 0, MAX_STEPS)
        integer("seed", 0, MAX_SEED)
        integer("seq_len", 1, ARCH_LIMITS["max_sequence_length"])
        integer("batch_size", 1, MAX_BATCH_TOKENS)
        integer("grad_accum", 1, MAX_GRAD_ACCUM)
        integer("eval_batches", 1, MAX_EVAL_BATCHES)
        integer("log_interval", 1, MAX_STEPS)
        integer("max_steps", 1, MAX_STEPS, optional=True)
        integer("max_tokens", 1, MAX_TOKENS, optional=True)
        if self.max_minutes is not None:
            number("max_minutes", 0.0, MAX_MINUTES, low_open=True)
        if not {"batch_size", "seq_len"} & errors.keys() and self.batch_size * self.seq_len > MAX_BATCH_TOKENS:
            errors["batch_size"] = (f"batch_size x seq_len must be at most {MAX_BATCH_TOKENS:,} tokens, got "
                                    f"{self.batch_size:,} x {self.seq_len:,}")
        if not errors.keys() & {"max_tokens", "batch_size", "seq_len", "grad_accum"} and self.max_tokens is not None:
            steps = math.ceil(self.max_tokens / self.tokens_per_step)
            if steps > MAX_STEPS:
                errors["max_tokens"] = (f"{self.max_tokens:,} tokens at {self.tokens_per_step:,} a step are {steps:,} "
                                        f"steps, more than {MAX_STEPS:,}: raise batch_size, seq_len or grad_accum")
        if all(getattr(self, key) is None for key in BUDGET_KEYS):
            errors["max_steps"] = "set a budget: max_steps, max_tokens or max_minutes"
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in self.betas)):
            errors["betas"] = f"must be two numbers in [0, 1), got {self.betas!r}"
        if "lr" not in errors and "min_lr" not in errors and self.min_lr > self.lr:
            errors["min_lr"] = f"must not exceed lr ({self.lr}), got {self.min_lr}"
        if not isinstance(self.device, str) or not self.device:
            errors["device"] = f"must be a torch device name such as 'cpu' or 'cuda', got {self.device!r}"
        if errors:
            raise TrainConfigError(errors)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len

    @property
    def total_steps(self) -> int | None:
        """Steps of the step/token budget (None for a minutes-only budget)."""
        limits = [self.max_steps] if self.max_steps else []
        if self.max_tokens:
            limits.append(math.ceil(self.max_tokens / self.tokens_per_step))
        return min(limits) if limits else None

    @property
    def warmup(self) -> int:
        total = self.total_steps
        return self.warmup_steps if total is None else min(self.warmup_steps, total // 10)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    def describe_budget(self) -> str:
        """The budget in words, e.g. "2,000 steps or 30 minutes, whichever came first" (model cards, the zoo)."""
        parts = []
        if self.max_steps:
            parts.append(f"{self.max_steps:,} steps")
        if self.max_tokens:
            parts.append(f"{self.max_tokens:,} tokens")
        if self.max_minutes:
            parts.append(f"{self.max_minutes:g} minutes")
        return " or ".join(parts) + (", whichever came first" if len(parts) > 1 else "")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        if not isinstance(data, Mapping):
            raise TrainConfigError({"config": f"must be a JSON object, got {type(data).__name__}"})
        known = {f.name for f in fields(cls)}
        unknown = {k: "unknown training setting" for k in data if k not in known}
        if unknown:
            raise TrainConfigError(unknown)
        return cls(**dict(data))


@dataclass(frozen=True)
class Progress:
    """One report: every ``log_interval`` steps, at evaluations, checkpoints and the end.

    ``train_loss`` is the mean over the steps since the previous report; ``val_loss``/``val_perplexity`` are set
    only when this step evaluated; ``tokens_per_s`` counts training steps only (not evaluation or checkpoint time);
    ``eta_s`` is None while unknown.
    """

    step: int
    total_steps: int | None
    tokens_seen: int
    train_loss: float | None
    val_loss: float | None
    val_perplexity: float | None
    lr: float
    tokens_per_s: float
    elapsed_s: float
    eta_s: float | None
    checkpoint: bool = False
    event: str = "train"  # "train" | "eval" | "done" | "stopped"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    status: str  # "completed" | "stopped"
    step: int
    total_steps: int | None
    tokens_seen: int
    elapsed_s: float
    train_loss: float | None
    val_loss: float | None  # final evaluation on the whole validation part ("completed" only)
    val_perplexity: float | None
    best_val_loss: float | None
    tokens_per_s: float  # this call's training steps only
    resumed_from: int | None  # checkpoint step this call resumed from
    arch: Architecture  # as trained: vocab_size is the tokenizer's
    run_dir: str
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arch"] = self.arch.to_dict()
        return data


def thin_history(history: list[dict[str, Any]], limit: int = HISTORY_POINTS) -> list[dict[str, Any]]:
    """Halve the older training-only points until the history fits ``limit`` (evaluations and the last point
    stay as long as they can), so a long run keeps its whole loss curve at a coarser grain."""
    while len(history) > limit:
        head, last = history[:-1], history[-1]
        thinned = [p for i, p in enumerate(head) if i % 2 == 0 or p.get("val_loss") is not None] + [last]
        history = thinned if len(thinned) < len(history) else head[::2] + [last]
    return history


@dataclass
class LoopState:
    """What the training loop carries from step to step and a checkpoint keeps (besides weights, optimizer, sampler
    and RNG): with them a resumed run continues exactly where it stopped."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0  # wall time of the run so far, evaluations and checkpoint writes included
    best_val_loss: float | None = None
    loss_sum: float = 0.0  # training losses since the last report
    loss_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # Progress.to_dict() of each report, thinned
    finished: bool = False
    final: dict[str, float] | None = None  # the final evaluation: val_loss, val_perplexity

    def to_checkpoint(self) -> dict[str, Any]:
        """This state's entries of a checkpoint (the keys every checkpoint of format 1 has)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> LoopState:
        return cls(**{f.name: ckpt[f.name] for f in fields(cls)})

    def add_step(self, tokens: int, loss: float) -> None:
        self.step += 1
        self.tokens_seen += tokens
        self.loss_sum += loss
        self.loss_count += 1

    def take_mean_loss(self) -> float | None:
        """The mean training loss since the last call (None without a step in between); resets the sum."""
        mean = self.loss_sum / self.loss_count if self.loss_count else None
        self.loss_sum, self.loss_count = 0.0, 0
        return mean

    def record(self, progress: Progress) -> None:
        self.history.append(progress.to_dict())
        self.history = thin_history(self.history)

    def evaluated(self, val_loss: float) -> None:
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss = val_loss


# ------------------------------------------------------------------------------------------------ schedule


def learning_rate(config: TrainConfig, step: int, progress: float) -> float:
    """nanoGPT's get_lr over a budget: linear warm-up for ``config.warmup`` steps, then cosine from lr to min_lr as
    ``progress`` (fraction of the budget used, 0..1) goes to 1. A pure function of (step, progress), so the
    checkpointed step and elapsed time are the scheduler's whole state.
    """
    warm = config.warmup
    if warm and step < warm:
        return config.lr * (step + 1) / (warm + 1)
    p = min(max(progress, 0.0), 1.0)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * p))


def _progress(config: TrainConfig, step: int, elapsed_s: float) -> float:
    total = config.total_steps
    parts = [step / total] if total else []
    if config.max_minutes:
        parts.append(elapsed_s / (config.max_minutes * 60.0))
    return max(parts)


# ------------------------------------------------------------------------------------------------ model, eval


def _build(arch: Architecture, config: TrainConfig, eos_token_id: int) -> GPT2LMHeadModel:
    from searches.core.arch import build_model

    model = build_model(arch, device="cpu", seed=config.seed, resid_pdrop=config.dropout,
                        embd_pdrop=config.dropout, bos_token_id=eos_token_id, eos_token_id=eos_token_id)
    return model.to(config.device)  # type: ignore[arg-type]  # transformers types .to as a decorator wrapper


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    import torch

    # Decay only matrices (linear and embedding weights); biases and LayerNorm gains stay undecayed (nanoGPT).
    # named_parameters() lists the tied wte/lm_head weight once.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def evaluate(model: torch.nn.Module, tokens: np.ndarray, seq_len: int, batch_size: int,
             max_windows: int | None = None, device: str = "cpu") -> float:
    """Mean cross-entropy per token (nats) over non-overlapping validation windows (all, or ``max_windows`` spread
    evenly). Runs in eval mode under no_grad and restores the previous mode; draws no random numbers."""
    import torch
    import torch.nn.functional as F

    starts = eval_windows(tokens, seq_len, max_windows)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    offsets = np.arange(seq_len + 1)
    with torch.no_grad():
        for i in range(0, len(starts), batch_size):
            windows = torch.from_numpy(tokens[starts[i : i + batch_size, None] + offsets].astype(np.int64)).to(device)
            logits = model(input_ids=windows[:, :-1], use_cache=False).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), windows[:, 1:].reshape(-1), reduction="sum")
            total += float(loss)
            count += windows[:, 1:].numel()
    model.train(was_training)
    return total / count


# ------------------------------------------------------------------------------------------------ checkpoints


def _rng_states() -> dict[str, Any]:
    import torch

    kind, keys, pos, has_gauss, gauss = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # As a tensor and plain numbers: torch.load(weights_only=True) refuses numpy arrays.
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    import torch

    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, rename over ``path``, fsync the folder: a crash
    at any point leaves the previous file or the new one, complete."""
    import torch

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(run_dir: str | os.PathLike[str], map_location: str = "cpu") -> dict[str, Any] | None:
    """The run's checkpoint dict, or None when it has none. Loaded with weights_only=True (no pickled code)."""
    import torch

    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: say which, do not crash-loop on it
        raise ResumeError({"checkpoint": f"{path} is not a readable checkpoint: {exc}"}) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != _CHECKPOINT_FORMAT:
        raise ResumeError({"checkpoint": f"{path} has format {ckpt.get('format') if isinstance(ckpt, dict) else '?'}, "
                                         f"expected {_CHECKPOINT_FORMAT}"})
    return ckpt


def model_from_checkpoint(run_dir: str | os.PathLike[str], map_location: str = "cpu") -> tuple[GPT2LMHeadModel, dict[str, Any]]:
    """The checkpoint's model (eval mode) and the checkpoint dict."""
    ckpt = load_checkpoint(run_dir, map_location)
    if ckpt is None:
        raise ResumeError({"checkpoint": f"{Path(run_dir) / CHECKPOINT_NAME} does not exist"})
    config = TrainConfig.from_dict(ckpt["config"])
    model = _build(Architecture.from_dict(ckpt["arch"]), replace(config, device=map_location), ckpt["eos_token_id"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def saved_tokenizer(run_dir: str | os.PathLike[str]) -> PreTrainedTokenizerBase | None:
    """The tokenizer a run saved at its start (reuse it to resume: a BPE need not be retrained), or None."""
    folder = Path(run_dir) / TOKENIZER_DIR
    return load_tokenizer(folder) if (folder / "tokenizer.json").is_file() else None


def _check_resume(ckpt: Mapping[str, Any], arch: Architecture, config: TrainConfig, data: TokenData,
                  fingerprint: str) -> None:
    errors: dict[str, str] = {}
    if ckpt["arch"] != arch.to_dict():
        errors["arch"] = f"checkpoint trained {ckpt['arch']}, not {arch.to_dict()}"
    saved = ckpt["config"]
    for key, value in config.to_dict().items():
        # The device may change (a run started on one worker resumes on another); nothing else may.
        if key != "device" and saved.get(key) != value:
            errors[key] = f"checkpoint used {saved.get(key)!r}, this call {value!r}"
    if ckpt["data_fingerprint"] != fingerprint:
        errors["data"] = "the token data differs from the checkpoint's (other text, split or tokenizer)"
    if errors:
        raise ResumeError(errors)


# ------------------------------------------------------------------------------------------------ train


def train(
    arch: Architecture,
    tokenizer: PreTrainedTokenizerBase,
    data: TokenData,
    config: TrainConfig,
    run_dir: str | os.PathLike[str],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source_arch: Architecture | None = None,
) -> TrainResult:
    """Train ``arch`` (vocab_size replaced by the tokenizer's) on ``data``, or resume the run in ``run_dir``.

    ``run_dir`` belongs to this run alone: it receives ``checkpoint.pt`` and ``tokenizer/``. A checkpoint there is
    resumed when its architecture, config, data and tokenizer match (ResumeError otherwise); a finished one returns
    at once. ``should_stop()`` is polled before every step (keep it cheap: a flag, not a query per step): when it
    returns True a checkpoint is written and the result has status "stopped". Exceptions from the callbacks
    propagate; the last checkpoint stays. ``source_arch`` (default ``arch``) is the architecture as searched, kept for the
    model card.
    """
    import torch
    import torch.nn.functional as F

    validate_tokenizer(tokenizer)
    trained_arch = replace(arch, vocab_size=len(tokenizer))
    if config.seq_len > trained_arch.max_sequence_length:
        raise TrainConfigError({"seq_len": f"{config.seq_len} exceeds the architecture's max_sequence_length "
                                           f"{trained_arch.max_sequence_length}"})
    for name, arr in (("train", data.train), ("val", data.val)):
        if arr.size and int(arr.max()) >= len(tokenizer):
            raise DataError({"data": f"{name} tokens reach id {int(arr.max())}, outside the tokenizer's {len(tokenizer)} "
                                     "tokens: the data was tokenized with another tokenizer"})
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    for stale in run_path.glob(f".{CHECKPOINT_NAME}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    fingerprint = data.fingerprint
    eos = int(tokenizer.eos_token_id)

    sampler = BatchSampler(data.train, config.seq_len, config.batch_size, seed=config.seed)
    eval_windows(data.val, config.seq_len)  # fail now, not at the first evaluation, when validation is too short
    model = _build(trained_arch, config, eos)
    optimizer = _optimizer(model, config)
    total_steps = config.total_steps
    max_s = config.max_minutes * 60.0 if config.max_minutes else math.inf

    state = LoopState()
    # On CPU whatever the device: the RNG states must stay CPU tensors; load_state_dict moves the rest.
    ckpt = load_checkpoint(run_path, map_location="cpu")
    resumed_from = None
    if ckpt is not None:
        _check_resume(ckpt, trained_arch, config, data, fingerprint)
        _check_tokenizer(run_path, tokenizer)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        sampler.load_state(ckpt["sampler"])
        _set_rng_states(ckpt["rng"])
        state = LoopState.from_checkpoint(ckpt)
        resumed_from = state.step
        del ckpt  # the model and optimizer hold copies; free the second set of weights
    else:
        save_tokenizer(tokenizer, run_path / TOKENIZER_DIR)
        torch.manual_seed(config.seed)
    model.train()

    def report(event: str, *, val_loss: float | None = None, checkpoint: bool = False) -> None:
        mean = state.take_mean_loss()
        rate = run_tokens / run_train_s if run_train_s > 0 else 0.0
        eta = None
        if rate > 0:
            candidates = [max(max_s - state.elapsed_s, 0.0)] if max_s < math.inf else []
            if total_steps is not None:
                candidates.append((total_steps - state.step) * config.tokens_per_step / rate)
            eta = min(candidates) if candidates else None
        progress = Progress(
            step=state.step, total_steps=total_steps, tokens_seen=state.tokens_seen, train_loss=mean,
            val_loss=val_loss, val_perplexity=math.exp(val_loss) if val_loss is not None else None, lr=lr,
            tokens_per_s=rate, elapsed_s=state.elapsed_s, eta_s=eta, checkpoint=checkpoint, event=event)
        state.record(progress)
        if on_progress is not None:
            on_progress(progress)

    def save_checkpoint() -> None:
        _atomic_save({
            "format": _CHECKPOINT_FORMAT,
            "arch": trained_arch.to_dict(),
            "source_arch": (source_arch or arch).to_dict(),
            "config": config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            # The learning rate is learning_rate(config, step, progress(step, elapsed_s)): these are its state.
            "scheduler": {"step": state.step, "elapsed_s": state.elapsed_s, "warmup": config.warmup,
                          "total_steps": total_steps},
            "sampler": sampler.state(),
            "rng": _rng_states(),
            "data_fingerprint": fingerprint,
            "data_description": data.description,
            "val_chars": data.val_chars,
            "val_tokens": int(len(data.val)),
            "eos_token_id": eos,
            **state.to_checkpoint(),
        }, run_path / CHECKPOINT_NAME)

    run_tokens, run_train_s = 0, 0.0
    # Wall time of the run so far, evaluations and checkpoint writes included: what max_minutes limits.
    call_start, elapsed_before = time.perf_counter(), state.elapsed_s
    lr = learning_rate(config, state.step, _progress(config, state.step, state.elapsed_s))
    status = "completed"
    last_saved = state.step if resumed_from is not None else -1
    while not state.finished:
        state.elapsed_s = elapsed_before + time.perf_counter() - call_start
        if (total_steps is not None and state.step >= total_steps) or state.elapsed_s >= max_s:
            break
        if should_stop is not None and should_stop():
            status = "stopped"
            break
        started = time.perf_counter()
        lr = learning_rate(config, state.step, _progress(config, state.step, state.elapsed_s))
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = 0.0
        for _ in range(config.grad_accum):
            batch = torch.from_numpy(sampler.next()).to(config.device)
            logits = model(input_ids=batch[:, :-1], use_cache=False).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
            (loss / config.grad_accum).backward()
            step_loss += float(loss.detach()) / config.grad_accum
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        took = time.perf_counter() - started
        run_train_s += took
        run_tokens += config.tokens_per_step
        state.add_step(config.tokens_per_step, step_loss)

        step = state.step
        # The last step gets the full evaluation and the final checkpoint below, not the interval ones.
        last = total_steps is not None and step >= total_steps
        val_loss = None
        if config.eval_interval and step % config.eval_interval == 0 and not last:
            val_loss = evaluate(model, data.val, config.seq_len, config.batch_size,
                                config.eval_batches * config.batch_size, config.device)
            state.evaluated(val_loss)
        state.elapsed_s = elapsed_before + time.perf_counter() - call_start
        checkpoint = bool(config.checkpoint_interval and step % config.checkpoint_interval == 0) and not last
        if checkpoint:
            # Report first so the checkpoint's history includes this step; its loss accumulator is then empty,
            # exactly as in an uninterrupted run after this report.
            report("eval" if val_loss is not None else "train", val_loss=val_loss, checkpoint=True)
            save_checkpoint()
            last_saved = step
        elif val_loss is not None or step % config.log_interval == 0:
            report("eval" if val_loss is not None else "train", val_loss=val_loss)

    if status == "stopped":
        if last_saved != state.step:
            save_checkpoint()
        report("stopped", checkpoint=True)
        return _result(state, status, total_steps, run_tokens, run_train_s, resumed_from, trained_arch, run_path)

    if not state.finished:
        final = evaluate(model, data.val, config.seq_len, config.batch_size, None, config.device)
        state.evaluated(final)
        state.final = {"val_loss": final, "val_perplexity": math.exp(final)}
        state.finished = True
        report("done", val_loss=final, checkpoint=True)
        save_checkpoint()
    return _result(state, status, total_steps, run_tokens, run_train_s, resumed_from, trained_arch, run_path)


def _check_tokenizer(run_path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    saved = saved_tokenizer(run_path)
    if saved is not None and saved.get_vocab() != tokenizer.get_vocab():
        raise ResumeError({"tokenizer": f"differs from the one saved in {run_path / TOKENIZER_DIR} at the start of the "
                                        "run: resume with saved_tokenizer(run_dir)"})


def _result(state: LoopState, status: str, total_steps: int | None, run_tokens: int, run_train_s: float,
            resumed_from: int | None, arch: Architecture, run_path: Path) -> TrainResult:
    history = list(state.history)
    train_losses = [h["train_loss"] for h in history if h["train_loss"] is not None]
    final = state.final or {}
    return TrainResult(
        status=status, step=state.step, total_steps=total_steps, tokens_seen=state.tokens_seen,
        elapsed_s=state.elapsed_s, train_loss=train_losses[-1] if train_losses else None,
        val_loss=final.get("val_loss"), val_perplexity=final.get("val_perplexity"),
        best_val_loss=state.best_val_loss, tokens_per_s=run_tokens / run_train_s if run_train_s else 0.0,
        resumed_from=resumed_from, arch=arch, run_dir=str(run_path), history=history)
