"""The search policies side by side on a simulated device: how many measurements each needs, and what hypervolume it
reaches, in seconds instead of hours. It chooses the policy's parameters; bench/search_e2e.py checks the choice on
real hardware.

    .venv/bin/python bench/policy_sim.py --preset gpt2-lts --generations 10 --seeds 1,2,3

The "device" is an analytic cost (FLOPs at a throughput that falls for narrow matrices, per-layer overheads, memory
from weights and the largest activation) with multiplicative noise (latency 3%, memory 0.3%): not a real device's
numbers, but the same shape of problem (smooth, with a misfit the cost model does not know). Both arms run the same
core code as the service: propose_generation, the space-filling design, fit_cost_model and choose_to_measure, with
predicted candidates entering the history at their point predictions.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from searches.core.cost_model import NotEnoughData, Observation, features, fit_cost_model
from searches.core.evolution import Evaluated, SearchParams, new_rng_state, propose_generation
from searches.core.pareto import OBJECTIVES, hypervolume
from searches.core.policy import choose_to_measure, design, design_top_up, policy_rng, score_space
from searches.core.profiling.settings import ProfileSettings
from searches.core.space import PRESETS


class SimulatedDevice:
    def __init__(self, settings: ProfileSettings, seed: int):
        self.settings, self.rng, self.cache = settings, np.random.default_rng(seed), {}

    def truth(self, arch) -> tuple[float, float]:
        f = features(arch, self.settings)
        efficiency = 60e9 / (1.0 + 96.0 / arch.d_model)  # narrow matmuls run below peak
        latency = (0.01 + 0.004 * f["layers"]
                   + (f["attn_proj_flops"] + f["mlp_flops"] + f["head_flops"]) / efficiency
                   + f["attn_score_flops"] / 25e9 + f["softmax_elems"] / 0.8e9
                   + (f["hidden_elems"] + f["mlp_elems"]) / 2e9)
        memory = 280.0 + (f["weight_bytes"] + 1.5 * f["logits_bytes"]
                          + max(f["score_bytes"], f["mlp_act_bytes"]) + 4 * f["hidden_bytes"]) / 2**20
        return latency, memory

    def measure(self, arch) -> tuple[float, float]:
        if arch.archid not in self.cache:
            latency, memory = self.truth(arch)
            self.cache[arch.archid] = (latency * float(np.exp(self.rng.normal(0, 0.03))),
                                       memory * float(np.exp(self.rng.normal(0, 0.003))))
        return self.cache[arch.archid]


def _fit(measured: dict[str, tuple], settings: ProfileSettings):
    """A cost model of the measured architectures, None until there are enough."""
    try:
        return fit_cost_model(settings, [Observation(a, o["latency"], o["memory"]) for a, o in measured.values()])
    except NotEnoughData:
        return None


def run_arm(policy: str, space, params: SearchParams, device: SimulatedDevice, settings, *, exploration: float,
            epsilon: float, batch_k: int = 10, min_gain: float = 0.0) -> dict:
    names = params.objectives
    history: list[Evaluated] = []
    measured: dict[str, tuple] = {}  # archid -> (arch, objectives) of measured candidates
    state = new_rng_state(params.seed)
    hv_points = []
    proposed = 0
    everything = list(space) if policy == "scored" else []
    for generation in range(params.generations):
        if policy == "scored":
            rng = policy_rng(params.seed, generation)
            model = _fit(measured, settings)
            if model is None:
                picks = design(space, design_top_up(len(measured), 0), rng, exclude=list(measured))
            else:
                rest = [a for a in everything if a.archid not in measured]
                front = [[o[n] for n in names] for _, o in measured.values()]
                order = score_space(rest, model.predict(rest), front, names, rng, k=batch_k, min_gain=min_gain,
                                    exploration=exploration)
                picks = [rest[i] for i in order]
            for arch in picks:
                latency, memory = device.measure(arch)
                measured[arch.archid] = (arch, {"proxy": float(arch.non_embedding_params), "latency": latency,
                                                "memory": memory})
            proposed += len(picks)
            hv_points.append([[o[n] for n in names] for _, o in measured.values()])
            continue
        batch = propose_generation(history, space, params, state)
        state = batch.rng_state
        archs = list(batch.archs)
        objectives: list[dict | None] = [None] * len(archs)
        measure = [True] * len(archs)
        if policy == "predicted":
            rng = policy_rng(params.seed, generation)
            model = _fit(measured, settings)
            if model is None:
                extra = design(space, design_top_up(len(measured), len(archs)), rng,
                               exclude=[a.archid for a in archs] + [e.arch.archid for e in history])
                archs += extra
                objectives += [None] * len(extra)
                measure += [True] * len(extra)
            else:
                pred = model.predict(archs)
                predictions = [{t: tuple(float(pred[t][j][k]) for j in range(3)) for t in pred}
                               for k in range(len(archs))]
                front = [[o[n] for n in names] for _, o in measured.values()]
                measure = choose_to_measure(archs, predictions, front, names, rng, exploration=exploration,
                                            **({"epsilon": epsilon} if epsilon else {}))
                for k, p in enumerate(predictions):
                    if not measure[k]:
                        objectives[k] = {"proxy": float(archs[k].non_embedding_params),
                                         "latency": p["latency"][0], "memory": p["memory"][0]}
        for k, arch in enumerate(archs):
            if measure[k]:
                latency, memory = device.measure(arch)
                objectives[k] = {"proxy": float(arch.non_embedding_params), "latency": latency, "memory": memory}
                measured[arch.archid] = (arch, objectives[k])
            history.append(Evaluated(arch, objectives[k], generation))
        proposed += len(archs)
        hv_points.append([[o[n] for n in names] for _, o in measured.values()])
    return {"policy": policy, "proposed": proposed, "measured": len(measured), "points": hv_points}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2-lts", choices=sorted(PRESETS))
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--exploration", type=float, default=0.05)
    parser.add_argument("--scored", default="", help="comma-separated k:min_gain of the whole-space arm")
    parser.add_argument("--epsilon", default="0", help="comma-separated epsilons to compare (0: plain dominance)")
    args = parser.parse_args()
    space = PRESETS[args.preset]
    settings = ProfileSettings(seq_len=args.seq_len)
    print("| seed | arm | proposed | measured | measured / all | hypervolume / all |\n|---|---|---|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        params = SearchParams(generations=args.generations, seed=seed)
        arms = [("all", 0.0)] + [("predicted", float(e)) for e in args.epsilon.split(",") if e]
        arms += [("scored", s) for s in args.scored.split(",") if s]
        results = []
        for p, e in arms:
            extra = {}
            if p == "scored":
                k, gain = e.split(":")
                extra, e = {"batch_k": int(k), "min_gain": float(gain)}, 0.0
            results.append(run_arm(p, space, params, SimulatedDevice(settings, seed), settings,
                                   exploration=args.exploration, epsilon=e, **extra))
        names = params.objectives
        every = [pt for r in results for pt in r["points"][-1]]
        ref = [0.0 if OBJECTIVES[n] == "maximize" else max(p[i] for p in every) * 1.1 for i, n in enumerate(names)]
        directions = [OBJECTIVES[n] for n in names]
        base = results[0]
        base_hv = hypervolume(base["points"][-1], ref, directions)
        for (p, e), r in zip(arms, results):
            hv = hypervolume(r["points"][-1], ref, directions)
            label = p if p == "all" or not e else f"{p} {e}"
            print(f"| {seed} | {label} | {r['proposed']} | {r['measured']} | {r['measured'] / base['measured']:.1%} "
                  f"| {hv / base_hv:.4f} |")


if __name__ == "__main__":
    main()
