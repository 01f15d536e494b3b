"""Benchmark of the hardware profiler at the reference's search settings (batch 1, sequence 1024, 1 thread).

    python bench/profiling.py            # full: 20 architectures x 2 passes x 2 backends (~10-15 min on 2 cores),
                                         # writes bench/results/profiling.md
    python bench/profiling.py --quick    # 3 architectures, 1 pass (~1 min), writes /tmp/profiling-quick.md

(a) wall time per candidate, latency plus memory, for the ten architectures below (the reference, archai's ONNX
    latency + ONNX-file "memory", spent 24.3 s per candidate here: goal <= 8.1 s);
(b) repeatability: the 20 architectures profiled twice; Spearman rank correlation of the two passes >= 0.98 and
    median relative difference <= 3%, for latency and for memory;
(c) torch against onnxruntime latency on the same architectures.

`--without-host-check-too` measures every architecture also with the host-speed check off (host_wait_s=0), right
after the same architecture with it on: an A/B of that check in one run.

Each pass runs the architectures in order, both backends one after the other per architecture, so slow phases of
this shared machine hit both backends alike. Before each measurement the script waits (up to --max-wait s) until
other processes use less than --quiet-below cores, and each result records the cores other processes kept busy
during its timed runs (ProfileResult.background_cpu). Machine, library versions and date go with the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import wait_quiet
from searches.core.arch import Architecture
from searches.core.profiling import (
    ProfileResult,
    ProfileSettings,
    describe_device,
    library_versions,
    profile,
)

REFERENCE_S = 24.3  # archai, 2-core machine here: 16.6 s latency + 7.7 s "memory" (two ONNX exports)
GOAL_S = REFERENCE_S / 3
D = ProfileSettings()  # the defaults every measurement here uses
# (n_layer, d_model, d_inner, n_head) from gpt2-lts (n_layer 1..10, d_model/d_inner in range(128, 1024, 64),
# n_head in {2, 4, 8}). First ten: n_layer 1..10, widths and heads drawn by SearchSpace.sample with
# numpy default_rng(4), the 7-layer one replaced by the 16.04M example; then ten more draws. 2.3M-43.8M
# non-embedding parameters, mean 17.2M over the first ten.
ARCHS = [
    (1, 768, 896, 2), (2, 576, 960, 2), (3, 960, 512, 4), (4, 640, 448, 4), (5, 640, 640, 8),
    (6, 256, 896, 4), (7, 576, 832, 8), (8, 896, 512, 4), (9, 896, 192, 4), (10, 832, 960, 2),
    (4, 960, 768, 2), (6, 960, 960, 4), (2, 640, 512, 2), (4, 640, 704, 4), (10, 448, 256, 8),
    (1, 704, 192, 2), (5, 576, 512, 2), (9, 512, 576, 8), (10, 448, 896, 2), (3, 384, 320, 8),
]
QUICK = [(1, 768, 896, 2), (4, 640, 448, 4), (7, 576, 832, 8)]
BACKENDS = ("torch", "onnxruntime")


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / ((a + b) / 2)


NO_CHECK = " (no host check)"


def variants(backends: tuple[str, ...], without_host_check: bool) -> dict[str, ProfileSettings]:
    """What each column measures: every backend with the defaults and, for the A/B, also without the host check."""
    out = {b: ProfileSettings(backend=b) for b in backends}
    if without_host_check:
        out.update({b + NO_CHECK: ProfileSettings(backend=b, host_wait_s=0) for b in backends})
    return out


def run(archs: list[Architecture], passes: int, settings: dict[str, ProfileSettings], quiet_below: float,
        max_wait_s: float) -> dict[str, list[list[ProfileResult]]]:
    """results[variant][pass][i]; each architecture is measured by every variant in turn, so slow phases of the host
    hit them alike."""
    results: dict[str, list[list[ProfileResult]]] = {v: [[] for _ in range(passes)] for v in settings}
    for p in range(passes):
        for i, arch in enumerate(archs):
            for variant, s in settings.items():
                waited = wait_quiet(quiet_below, max_wait_s)
                r = profile(arch, s)
                results[variant][p].append(r)
                host = r.host or {}
                print(f"pass {p + 1} arch {i + 1:2d} {variant:11s} {arch.non_embedding_params / 1e6:6.2f}M "
                      f"latency {r.latency.median:.3f} s (n={r.latency.n}, ci95 {r.latency.ci95:.1%}) "
                      f"memory {r.peak_memory_mb:6.1f} MB  wall {r.wall_time_s:5.2f} s "
                      f"{ {k: round(v, 2) for k, v in r.phases_s.items()} } background {r.background_cpu} "
                      f"host {host.get('probe_ms_median')}/{host.get('reference_ms')} ms, "
                      f"{host.get('discarded_runs')} discarded, {host.get('spent_s')} s "
                      f"(waited {waited:.0f} s)", file=sys.stderr, flush=True)
    return results


def host_check_line(results: dict[str, list[list[ProfileResult]]]) -> str:
    """How often the host-speed check held runs back, per variant that had it."""
    parts = []
    for variant, passes in results.items():
        hosts = [r.host for p in passes for r in p if r.host]
        if not hosts:
            continue
        parts.append(
            f"{variant}: {sum(h['discarded_runs'] for h in hosts)} timed runs discarded and "
            f"{sum(h['spent_s'] for h in hosts):.0f} s spent waiting or on them in {len(hosts)} measurements "
            f"({sum(h['discarded_runs'] > 0 or h['spent_s'] > 0 for h in hosts)} affected, budget spent in "
            f"{sum(h['budget_spent'] for h in hosts)}); reference probe "
            f"{min(h['reference_ms'] for h in hosts):.2f} ms, probes' median "
            f"{statistics.median(h['probe_ms_median'] for h in hosts):.2f} ms")
    return ("Host-speed check (ProfileSettings.host_tolerance / host_wait_s, defaults "
            f"{D.host_tolerance:.0%} / {D.host_wait_s:g} s): " + "; ".join(parts) + ".") if parts else ""


def other_load(r: ProfileResult) -> float:
    return (r.background_cpu or {}).get("other_processes", 0.0) + (r.background_cpu or {}).get("steal", 0.0)


def report(archs: list[Architecture], results: dict[str, list[list[ProfileResult]]], n_wall: int, command: str,
           started: str, quiet_below: float, first_call_s: float) -> str:
    every = [r for passes in results.values() for p in passes for r in p]
    contended = [r for r in every if other_load(r) >= 0.5]
    untimed = ("the memory run the only untimed run" if D.warmup == 1 else
               f"{D.warmup} untimed runs, the first also the memory run")
    lines = [
        "## Profiling: latency and peak memory per candidate",
        "",
        f"`{command}` on {started} (UTC). Settings: batch 1, sequence 1024, 1 thread, prefill, float32, vocab 50257;",
        f"defaults otherwise ({untimed}; then at least {D.min_repeats} timed runs, until the median's 95% CI",
        f"is within {D.rel_tolerance:.0%} or {D.max_seconds:g} s of timed runs). Every measurement runs in fresh child "
        "processes.",
        "",
        f"Machine: {_machine()}. The machine is shared with other sessions: each measurement waited until other",
        f"processes used < {quiet_below} core, yet during the timed runs they kept on average "
        f"{statistics.fmean(other_load(r) for r in every):.2f} core busy "
        f"(max {max(other_load(r) for r in every):.2f});",
        f"{len(contended)} of {len(every)} measurements ran with >= 0.5 core busy elsewhere.",
        f"Libraries: {', '.join(f'{k} {v}' for k, v in library_versions().items())}.",
        "",
        f"### (a) Wall time per candidate, latency + memory (goal <= {GOAL_S:.1f} s, one third of the reference's "
        f"{REFERENCE_S} s)",
        "",
        "| # | n_layer | d_model | d_inner | n_head | non-emb. params | " + " | ".join(
            f"{b} wall s" for b in results) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(results),
    ]
    walls = {b: [statistics.fmean(p[i].wall_time_s for p in results[b]) for i in range(n_wall)] for b in results}
    for i, arch in enumerate(archs[:n_wall]):
        lines.append(f"| {i + 1} | {arch.n_layer} | {arch.d_model} | {arch.d_inner} | {arch.n_head} | "
                     f"{arch.non_embedding_params / 1e6:.2f}M | " + " | ".join(f"{walls[b][i]:.2f}" for b in results)
                     + " |")
    lines.append("| **mean** | | | | | | " + " | ".join(
        f"**{statistics.fmean(walls[b]):.2f}** ({'meets' if statistics.fmean(walls[b]) <= GOAL_S else 'MISSES'} "
        f"the goal)" for b in results) + " |")
    lines += ["", f"Wall time is the whole profile() call (child start, build, export, memory run, timed runs), the "
                  f"mean over {len(next(iter(results.values())))} pass(es). Not included: the forkserver's one-time "
                  f"start ({first_call_s:.1f} s for the first call of a process, paid once per worker).", "",
              "Where the time goes (sum over these candidates and passes, share of wall time):", ""]
    for backend, passes in results.items():
        rows = [r for p in passes for r in p[:n_wall]]
        total = sum(r.wall_time_s for r in rows)
        phases: dict[str, float] = {}
        for r in rows:
            for k, v in r.phases_s.items():
                phases[k] = phases.get(k, 0.0) + v
        phases["process start, transfer, clean-up"] = total - sum(phases.values())
        lines.append(f"- {backend}: " + ", ".join(f"{k} {v / total:.0%}" for k, v in phases.items()) +
                     f"; {statistics.fmean(r.latency.n for r in rows):.1f} timed repeats on average.")
    if len(next(iter(results.values()))) >= 2:
        lines += ["", f"### (b) Repeatability: {len(archs)} architectures profiled twice (goal: Spearman >= 0.98, "
                      "median relative difference <= 3%)", "",
                  "The verdict is on the latency median (the profiler's figure) and the memory; the latency minimum is",
                  "shown because, interference only ever slowing a run, it is the steadier figure on a shared machine.",
                  "",
                  "| backend | pairs | latency median: Spearman | rel. diff, median (max) | latency min: Spearman | "
                  "rel. diff | memory: Spearman | rel. diff | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        for backend, passes in results.items():
            pairs = list(zip(passes[0], passes[1]))
            quiet = [(a, b) for a, b in pairs if max(other_load(a), other_load(b)) < 0.5]
            for label, subset in (("all", pairs), ("both quiet (< 0.5 core elsewhere)", quiet)):
                if len(subset) < 3 or (label != "all" and len(subset) == len(pairs)):
                    continue
                lines.append(f"| {backend} | {label}: {len(subset)} | " + _repeatability(subset) + " |")
    check = host_check_line(results)
    if check:
        lines += ["", check]
    if {"torch", "onnxruntime"} <= results.keys():
        torch_res, ort_res = results["torch"], results["onnxruntime"]
        lines += ["", "### (c) torch (eager, inference_mode) against onnxruntime: latency and peak memory", "",
                  "Mean of the passes. Memory is what loading and one run add to a fresh process; the reference "
                  "reported the ONNX file size instead (last column).", "",
                  "| n_layer | d_model | d_inner | n_head | non-emb. params | torch s | onnxruntime s | ort / torch | "
                  "torch MB | onnxruntime MB | ONNX file MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        ratios = []
        for i, arch in enumerate(archs):
            t = statistics.fmean(p[i].latency.median for p in torch_res)
            o = statistics.fmean(p[i].latency.median for p in ort_res)
            tm = statistics.fmean(p[i].peak_memory_mb for p in torch_res)
            om = statistics.fmean(p[i].peak_memory_mb for p in ort_res)
            ratios.append(o / t)
            lines.append(f"| {arch.n_layer} | {arch.d_model} | {arch.d_inner} | {arch.n_head} | "
                         f"{arch.non_embedding_params / 1e6:.2f}M | {t:.3f} | {o:.3f} | {o / t:.2f} | {tm:.0f} | "
                         f"{om:.0f} | {(ort_res[0][i].onnx_file_bytes or 0) / 2**20:.0f} |")
        rho = spearman([statistics.fmean(p[i].latency.median for p in torch_res) for i in range(len(archs))],
                       [statistics.fmean(p[i].latency.median for p in ort_res) for i in range(len(archs))])
        lines += ["", f"onnxruntime / torch latency: median {statistics.median(ratios):.2f}, range "
                      f"{min(ratios):.2f}-{max(ratios):.2f}; Spearman between the backends' rankings {rho:.3f}."]
    return "\n".join(lines) + "\n"


def _repeatability(pairs: list[tuple[ProfileResult, ProfileResult]]) -> str:
    """Cells: latency median, latency min (informative), memory; the verdict is on the median and the memory."""
    cells, ok = [], True
    for judged, value in ((True, lambda r: r.latency.median), (False, lambda r: r.latency.min),
                          (True, lambda r: r.peak_memory_mb)):
        one, two = [value(a) for a, _ in pairs], [value(b) for _, b in pairs]
        rho = spearman(one, two)
        diffs = [rel_diff(a, b) for a, b in zip(one, two)]
        ok = ok and (not judged or (rho >= 0.98 and statistics.median(diffs) <= 0.03))
        cells += [f"{rho:.4f}", f"{statistics.median(diffs):.2%} ({max(diffs):.1%})"]
    return " | ".join(cells) + f" | {'meets' if ok else 'MISSES'}"


def _machine() -> str:
    d = describe_device()
    gpus = ", ".join(d["gpus"]) or "no GPU"
    return (f"{d['cpu_model']}, {d['cpu_cores_usable']} usable cores ({d['cpu_cores_logical']} logical), "
            f"{d['ram_mb'] / 1024:.0f} GiB RAM, {gpus}, {d['platform']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 architectures, 1 pass")
    parser.add_argument("--archs", type=int, default=len(ARCHS), help="how many of the 20 architectures")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: torch,onnxruntime")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=Path("/tmp/profiling-results.json"),
                        help="every ProfileResult, for further analysis")
    parser.add_argument("--quiet-below", type=float, default=0.3, help="wait until other processes use fewer cores")
    parser.add_argument("--max-wait", type=float, default=300.0, help="seconds to wait for quiet per measurement")
    parser.add_argument("--without-host-check-too", action="store_true",
                        help="A/B: also measure every architecture with the host-speed check off (host_wait_s=0)")
    args = parser.parse_args()
    specs = QUICK if args.quick else ARCHS[: args.archs]
    passes = 1 if args.quick else args.passes
    output = args.output or (Path("/tmp/profiling-quick.md") if args.quick else ROOT / "bench/results/profiling.md")
    backends = tuple(b for b in args.backends.split(",") if b)
    archs = [Architecture(*spec) for spec in specs]
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    command = "python " + " ".join(shlex.quote(a) for a in ["bench/profiling.py", *sys.argv[1:]])
    # The first call of a process starts the forkserver (its imports): measured apart, as a worker pays it once.
    t0 = time.perf_counter()
    profile(Architecture(1, 128, 128, 2, vocab_size=1000, max_sequence_length=64),
            ProfileSettings(seq_len=64, min_repeats=2, max_seconds=0.1))
    first_call_s = time.perf_counter() - t0
    results = run(archs, passes, variants(backends, args.without_host_check_too), args.quiet_below, args.max_wait)
    text = report(archs, results, min(10, len(archs)), command, started, args.quiet_below, first_call_s)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    args.json.write_text(json.dumps({b: [[r.to_dict() for r in p] for p in passes] for b, passes in results.items()}))
    print(text)
    print(f"written to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
