"""The profiler on an NVIDIA GPU (torch backend, device cuda): the ten architectures of bench/profiling.py at batch 1,
sequence 1024 (prefill) and per-token decode after a 1016-token prompt, float32 and bfloat16, profiled twice.

    python bench/profiling_gpu.py [--passes 2] [--output FILE]

Reports wall time per candidate, latency median, peak memory (torch.cuda.max_memory_allocated) and the agreement of
the two passes (Spearman, median relative difference), with the device and library versions. Needs only the core
(no Django): it runs on a bare GPU machine with torch, transformers, numpy, scipy and moocore.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profiling import ARCHS, rel_diff, spearman
from searches.core.arch import Architecture
from searches.core.profiling import DECODE_STEPS, ProfileSettings, library_versions, profile

CASES = [  # (label, settings): decode's prompt leaves room for its generated tokens in the 1024 positions
    ("prefill fp32", dict(mode="prefill", dtype="float32", seq_len=1024)),
    ("prefill bf16", dict(mode="prefill", dtype="bfloat16", seq_len=1024)),
    ("decode fp32", dict(mode="decode", dtype="float32", seq_len=1024 - DECODE_STEPS)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    archs = [Architecture(*a, vocab_size=50257, max_sequence_length=1024) for a in ARCHS[: args.archs]]
    started = time.time()
    results: dict[str, list[list]] = {label: [] for label, _ in CASES}
    try:
        for _ in range(args.passes):
            for label, extra in CASES:
                settings = ProfileSettings(device="cuda", backend="torch", batch_size=1, threads=1, **extra)
                results[label].append([profile(arch, settings) for arch in archs])
    finally:  # what was measured is reported even when a later case fails
        report(results, archs, args.passes, time.time() - started, args.output)


def report(results: dict[str, list[list]], archs: list[Architecture], passes_asked: int, elapsed_s: float,
           output: Path | None) -> None:
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    done = [label for label, _ in CASES if results[label]]
    if not done:
        return
    device = results[done[0]][0][0].device
    say("## Profiling on a GPU (torch, cuda)\n")
    say(f"`python bench/profiling_gpu.py --passes {passes_asked}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"(UTC), {elapsed_s:.0f} s in all. Device: {device.get('cuda_device') or device}; "
        f"{device.get('cpu_model', '?')}, {device.get('cpu_cores_usable', '?')} cores. Libraries: "
        + ", ".join(f"{k} {v}" for k, v in library_versions().items()) + ".\n")
    say(f"Batch 1; prefill: one forward over 1024 tokens; decode: per generated token after a {1024 - DECODE_STEPS}-token prompt "
        "(KV cache). Memory: torch.cuda.max_memory_allocated over loading and one run.\n")
    say("| case | non-emb. params (first..last) | wall s per candidate (mean) | latency median, ms (per arch) | "
        "peak MB (per arch) | passes: Spearman latency | median rel. diff latency | Spearman memory |")
    say("|---|---|---|---|---|---|---|---|")
    for label in done:
        passes = results[label]
        first = passes[0]
        wall = statistics.fmean(r.wall_time_s for p in passes for r in p)
        lat = ", ".join(f"{r.latency.median * 1000:.2f}" for r in first)
        mem = ", ".join(f"{r.peak_memory_mb:.0f}" for r in first)
        if len(passes) > 1:
            a = [r.latency.median for r in passes[0]]
            b = [r.latency.median for r in passes[1]]
            rho = f"{spearman(a, b):.3f}"
            diff = f"{statistics.median(rel_diff(x, y) for x, y in zip(a, b)):.2%}"
            rho_m = f"{spearman([r.peak_memory_mb for r in passes[0]], [r.peak_memory_mb for r in passes[1]]):.3f}"
        else:
            rho = diff = rho_m = "–"
        say(f"| {label} | {archs[0].non_embedding_params / 1e6:.2f}M..{archs[-1].non_embedding_params / 1e6:.2f}M | "
            f"{wall:.2f} | {lat} | {mem} | {rho} | {diff} | {rho_m} |")
    if output:
        output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
