"""Export a training run to the zoo: an ordinary Hugging Face checkpoint folder with a generated model card.

``export_model(run_dir, out_dir, measurements=[...])`` writes config.json, generation_config.json,
model.safetensors, the tokenizer files and README.md into a temporary sibling folder and renames it into place, so
the zoo never shows half an export. ``AutoModelForCausalLM.from_pretrained(out_dir)`` and
``AutoTokenizer.from_pretrained(out_dir)`` load it.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from searches.core.arch import ARCH_KEYS, Architecture, ArchitectureError

from .trainer import ResumeError, TrainConfig, model_from_checkpoint, saved_tokenizer

__all__ = ["architecture_from_hf_config", "export_model", "render_model_card"]


def architecture_from_hf_config(config: Mapping[str, Any], *, dropatt: float = 0.0) -> Architecture:
    """The Architecture of a Hugging Face GPT-2 ``config.json`` (a dict), e.g. a subfolder of microsoft/lts-gpt2-sm.

    GPT2Config names: n_embd is d_model, n_inner is d_inner (None means 4 * n_embd), n_positions is
    max_sequence_length. ``dropatt`` is a training setting the config does not reliably record (GPT2Config's
    attn_pdrop defaults to 0.1 whatever the training used), so it is the caller's: the search spaces use 0.0.
    """
    if not isinstance(config, Mapping):
        raise ArchitectureError({"config": f"config.json must hold a JSON object, got {type(config).__name__}"})
    if config.get("model_type") != "gpt2":
        raise ArchitectureError({"model_type": f"only GPT-2 checkpoints (model_type 'gpt2') can be imported, got "
                                              f"{config.get('model_type')!r}"})
    missing = [k for k in ("n_layer", "n_embd", "n_head", "vocab_size", "n_positions") if k not in config]
    if missing:
        raise ArchitectureError({k: "missing from config.json" for k in missing})
    d_model = config["n_embd"]
    d_inner = config.get("n_inner") or (4 * d_model if isinstance(d_model, int) else d_model)
    return Architecture(n_layer=config["n_layer"], d_model=d_model, d_inner=d_inner, n_head=config["n_head"],
                        vocab_size=config["vocab_size"], max_sequence_length=config["n_positions"], dropatt=dropatt)


def export_model(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    measurements: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
    data_description: str | None = None,
    tokenizer_description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the run's last checkpoint as a Hugging Face model folder; returns ``out_dir``.

    The exported weights are the final ones (with the cosine schedule ending at min_lr the last evaluation is
    almost always the best; the card states both). A run stopped before its budget exports too, and its card says
    so. ``measurements`` are rows for the card's latency/memory table, e.g.
    ``{"device": "cpu-2core", "batch": 1, "seq_len": 128, "latency_ms": 3.1, "memory_mb": 41.0}``; the columns
    are the keys in order of first appearance.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    model, ckpt = model_from_checkpoint(run_dir)
    tokenizer = saved_tokenizer(run_dir)
    if tokenizer is None:
        raise ResumeError({"tokenizer": f"{run_dir} has no saved tokenizer"})
    arch = Architecture.from_dict(ckpt["arch"])
    tokenizer.model_max_length = arch.max_sequence_length
    model.generation_config.pad_token_id = ckpt["eos_token_id"]  # GPT-2 has no pad token; generate() pads with eos

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        card = render_model_card(
            ckpt, measurements=measurements, title=title or out.name,
            data_description=data_description or ckpt.get("data_description") or "unknown",
            tokenizer_description=tokenizer_description or f"{type(tokenizer).__name__}, {len(tokenizer):,} tokens",
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def render_model_card(
    ckpt: Mapping[str, Any],
    *,
    measurements: Sequence[Mapping[str, Any]] = (),
    title: str = "LTS GPT-2 model",
    data_description: str = "unknown",
    tokenizer_description: str = "unknown",
) -> str:
    """README.md for a checkpoint dict (see trainer.save_checkpoint): architecture, archid, proxy, data, budget,
    validation perplexity and the latency/memory table."""
    arch = Architecture.from_dict(ckpt["arch"])
    source = Architecture.from_dict(ckpt.get("source_arch") or ckpt["arch"])
    config = TrainConfig.from_dict(ckpt["config"])
    final = ckpt.get("final") or {}
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [gpt2, lightweight-transformer-search, lts-studio]",
        "---",
        "",
        f"# {title}",
        "",
        "A GPT-2 decoder found by Lightweight Transformer Search and trained by LTS Studio.",
        "",
        "## Architecture",
        "",
        "| " + " | ".join(ARCH_KEYS) + " |",
        "|" + "---|" * len(ARCH_KEYS),
        "| " + " | ".join(str(getattr(arch, k)) for k in ARCH_KEYS) + " |",
        "",
        f"- archid (as trained): `{arch.archid}`",
    ]
    if source != arch:
        lines.append(f"- archid (as searched): `{source.archid}` (vocab_size {source.vocab_size} replaced by the "
                     f"tokenizer's {arch.vocab_size})")
    lines += [
        f"- Non-embedding parameters (the LTS proxy): {arch.non_embedding_params:,}",
        f"- Total parameters: {arch.total_params:,} (lm_head tied to the token embedding)",
        "",
        "## Data",
        "",
        f"- Source: {data_description}",
        f"- Tokenizer: {tokenizer_description}",
        f"- Validation part: {ckpt.get('val_tokens', 0):,} tokens ({ckpt.get('val_chars', 0):,} characters)",
        "",
        "## Training",
        "",
        f"- Budget: {config.describe_budget()}",
        f"- Trained: {ckpt['step']:,} steps, {ckpt['tokens_seen']:,} tokens, {ckpt['elapsed_s'] / 60:.1f} minutes"
        + ("" if ckpt.get("finished") else " (stopped before the end of its budget)"),
        f"- Batch: {config.batch_size} x {config.seq_len} tokens x {config.grad_accum} accumulation steps",
        f"- AdamW lr {config.lr:g} -> {config.min_lr:g} (cosine, {config.warmup} warm-up steps), weight decay "
        f"{config.weight_decay:g}, betas {config.betas[0]:g}/{config.betas[1]:g}, gradient clip {config.grad_clip:g}, "
        f"dropout {config.dropout:g}, seed {config.seed}",
        "",
        "## Results",
        "",
    ]
    if final:
        loss = final["val_loss"]
        bpc = loss * ckpt["val_tokens"] / (ckpt["val_chars"] * math.log(2)) if ckpt.get("val_chars") else None
        lines.append(f"- Validation loss {loss:.4f} nats/token, perplexity {final['val_perplexity']:.2f}"
                     + (f", {bpc:.3f} bits per character" if bpc is not None else "") + " (whole validation part)")
    else:
        lines.append("- Not evaluated on the whole validation part (the run was stopped early).")
    if ckpt.get("best_val_loss") is not None:
        lines.append(f"- Best validation loss during training: {ckpt['best_val_loss']:.4f}")
    lines += ["", "## Latency and memory", ""]
    lines += _table(measurements) if measurements else ["No measurements recorded for this architecture yet."]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("PATH")',
        'model = AutoModelForCausalLM.from_pretrained("PATH")',
        'ids = tokenizer("First Citizen:", return_tensors="pt")',
        "print(tokenizer.decode(model.generate(**ids, max_new_tokens=40)[0]))",
        "```",
        "",
    ]
    return "\n".join(lines)


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows
    ]
