"""Benchmark of the LTS core: proxy scoring rate, frontier + hypervolume at 100k points, one search generation.

    python bench/core.py                  # prints the figures and writes bench/results/core.md
    python bench/core.py --build-configs 4 --repeats 3 --output /tmp/core.md   # quicker

Each figure is the median of repeats after a warm-up (nanoGPT bench.py habit); machine, library versions and date
are printed and written with the figures.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import moocore
import numpy as np
import torch
import transformers

from searches.core.arch import Architecture, build_model
from searches.core.evolution import (
    Evaluated,
    SearchParams,
    propose_generation,
    propose_random,
    run_search,
)
from searches.core.pareto import hypervolume, pareto_mask, reference_point
from searches.core.space import PRESETS

DIRECTIONS = ["maximize", "minimize", "minimize"]  # proxy, latency, memory


def median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fake_measure(arch: Architecture) -> dict[str, float]:
    """Deterministic latency/memory stand-ins with the real trade-off (bigger = slower, more memory)."""
    flops = arch.n_layer * arch.d_model * (4 * arch.d_model + 2 * arch.d_inner) + arch.d_model * arch.vocab_size
    return {"latency": flops * 1e-11 + arch.n_layer * 2e-4, "memory": arch.total_params * 4 / 2**20 + 30.0}


def bench_proxy(build_configs: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    space = PRESETS["gpt2-lts"]
    archs = [space.sample(rng) for _ in range(100_000)]
    configs = [a.to_dict() for a in archs]

    def analytic_from_json() -> None:  # what lts_arch and the web pay: parse + validate + count
        for config in configs:
            _ = Architecture.from_dict(config).non_embedding_params

    def analytic() -> None:  # what the search step pays: its candidates are Architecture objects already
        for arch in archs:
            _ = arch.non_embedding_params

    # The reference: instantiate a GPT2LMHeadModel with real (randomly initialized) weights per candidate and count.
    built = configs[:build_configs]

    def reference() -> None:
        for config in built:
            model = build_model(Architecture.from_dict(config), device="cpu", seed=0)
            total = sum(p.numel() for p in model.parameters())
            total - model.transformer.wte.weight.numel() - model.transformer.wpe.weight.numel()

    reference_rate = len(built) / median_time(reference, repeats)
    from_json_rate = len(configs) / median_time(analytic_from_json, repeats)
    object_rate = len(archs) / median_time(analytic, repeats)
    return {
        "reference_rate": reference_rate,
        "from_json_rate": from_json_rate,
        "object_rate": object_rate,
        "speedup": from_json_rate / reference_rate,
        "object_speedup": object_rate / reference_rate,
    }


def bench_frontier(repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    uniform = rng.random((100_000, 3))
    # Worst case: every point non-dominated (proxy - latency - memory = const on a random plane section).
    latency, memory = rng.random(100_000), rng.random(100_000)
    all_front = np.column_stack([latency + memory, latency, memory])
    out: dict[str, float] = {}
    for name, points in (("uniform", uniform), ("all_front", all_front)):
        def run(points: np.ndarray = points) -> tuple[int, float]:
            mask = pareto_mask(points, DIRECTIONS)
            return int(mask.sum()), hypervolume(points[mask], reference_point(points, DIRECTIONS), DIRECTIONS)

        out[f"{name}_s"] = median_time(run, repeats)
        out[f"{name}_front"] = run()[0]
    return out


def bench_generation(repeats: int) -> dict[str, float]:
    """One step as a worker runs it: the history comes back from storage as configs + objective values, so the
    Architecture objects (and their archids) are rebuilt inside the timed call."""
    space, params = PRESETS["gpt2-lts"], SearchParams()
    result = run_search(fake_measure, space, params)  # 10 generations
    stored = [(e.arch.to_dict(), dict(e.objectives or {}), e.generation) for e in result.history]

    def step(propose: Callable[..., Any]) -> None:
        history = [Evaluated(Architecture.from_dict(c), o, g) for c, o, g in stored]
        propose(history, space, params, result.rng_state)

    return {
        "history": len(stored),
        "frontier": len(result.frontier),
        "evolution_s": median_time(lambda: step(propose_generation), repeats),
        "random_s": median_time(lambda: step(propose_random), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-configs", type=int, default=8, help="gpt2-lts models built per repeat for the reference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "core.md")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()

    command = "python " + " ".join(shlex.quote(a) for a in ["bench/core.py", *sys.argv[1:]])
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
        f"{platform.system()} {platform.release()}, load average {os.getloadavg()[0]:.2f} at start"
    )
    versions = (
        f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, moocore {moocore.__version__}"
    )
    print(f"{date}\n{machine}\n{versions}")

    proxy = bench_proxy(args.build_configs, args.repeats)
    print(f"proxy: analytic {proxy['from_json_rate']:,.0f} configs/s from JSON ({proxy['object_rate']:,.0f}/s from objects), "
          f"reference {proxy['reference_rate']:.2f} configs/s, x{proxy['speedup']:,.0f} (x{proxy['object_speedup']:,.0f})")
    front = bench_frontier(max(args.repeats, 7))
    print(f"frontier+HV 100k x 3: uniform {front['uniform_s'] * 1e3:.1f} ms ({front['uniform_front']} on front), "
          f"all non-dominated {front['all_front_s'] * 1e3:.1f} ms")
    gen = bench_generation(max(args.repeats, 21))
    print(f"one generation (history {gen['history']}, frontier {gen['frontier']}): evolution {gen['evolution_s'] * 1e3:.1f} ms, "
          f"random {gen['random_s'] * 1e3:.1f} ms")

    def ok(good):
        return "met" if good else "**missed**"

    table = f"""## LTS core (bench/core.py)

Command: `{command}` · {date}
Machine: {machine}
Libraries: {versions}
Each figure is the median of {args.repeats} (proxy), {max(args.repeats, 7)} (frontier) and {max(args.repeats, 21)} (generation) repeats after a warm-up.

| What | Figure | Goal |
|---|---|---|
| Proxy, reference (build GPT2LMHeadModel on CPU with real weights and count; {args.build_configs} gpt2-lts configs) | {proxy['reference_rate']:.2f} configs/s | |
| Proxy, analytic from JSON configs (`Architecture.from_dict(config).non_embedding_params`, 100,000 gpt2-lts configs) | {proxy['from_json_rate']:,.0f} configs/s | |
| Proxy, analytic on Architecture objects (what the search step pays) | {proxy['object_rate']:,.0f} configs/s | |
| Speed-up of the analytic proxy, from JSON (from objects) | {proxy['speedup']:,.0f}x ({proxy['object_speedup']:,.0f}x) | >= 100,000x: {ok(proxy['speedup'] >= 1e5)} |
| Frontier + hypervolume, 100,000 uniform points, 3 objectives ({front['uniform_front']} on the front) | {front['uniform_s'] * 1e3:.1f} ms | < 1 s: {ok(front['uniform_s'] < 1)} |
| Frontier + hypervolume, 100,000 points all non-dominated, 3 objectives | {front['all_front_s'] * 1e3:.1f} ms | < 1 s: {ok(front['all_front_s'] < 1)} |
| Propose one generation, evolution (history of 10 gpt2-lts generations rebuilt from stored configs: {gen['history']} archs, frontier {gen['frontier']}) | {gen['evolution_s'] * 1e3:.1f} ms | < 50 ms: {ok(gen['evolution_s'] < 0.05)} |
| Propose one generation, random baseline (same history) | {gen['random_s'] * 1e3:.1f} ms | |

Latency and memory in the generation benchmark are deterministic stand-ins (the search step never measures);
the reference rate is over the first {args.build_configs} of the same seeded gpt2-lts sample.
"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
