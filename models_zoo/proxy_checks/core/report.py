"""The result of a proxy check: coefficients per budget and predictor, the agreement between budgets, and what they
mean in one plain paragraph.

Wording follows what was measured on these machines (shared/notes/proxy-check-findings.md): a few hundred thousand
tokens per model is a *short-run* ranking, not the fully trained one the LTS paper correlates (rho about -0.97 over
200 GPT-2 models on WikiText-103); a result whose interval spans zero is inconclusive; total parameters and d_model are
shown beside the proxy because at short budgets they can rank better.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .stats import JUDGE_MODELS, JUDGE_P, MIN_MODELS, correlate, summarize

__all__ = ["PREDICTORS", "RECOMMENDED_MODELS", "analyze", "interpret"]

# The predictors a check reports, in display order: the LTS proxy, then the baselines the findings asked for.
PREDICTORS = {
    "proxy": "non-embedding parameters (the LTS proxy)",
    "total_params": "total parameters",
    "d_model": "d_model",
}
# K of 20 or more: with 10 models the findings' interval for rho spanned [-0.92, +0.30].
RECOMMENDED_MODELS = 20
_PAPER = ("The LTS paper's rho of about -0.97 is for fully trained models (hundreds of millions of tokens each); this "
          "check measures the ranking that your budget per model can see.")


def analyze(points: Mapping[int, Sequence[Mapping[str, Any]]], *, failed: Mapping[int, int] | None = None,
            resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``points`` maps a budget (tokens per model) to the finished models at that budget, each a mapping with
    ``archid``, the predictors of PREDICTORS and ``val_ppl``; ``failed`` the number of models excluded at each budget
    (failed or cancelled). Returns a JSON-safe result: per budget the number of models and, per predictor, Spearman
    and Kendall with intervals and the pair concordance; with two budgets or more, the Spearman/Kendall agreement of
    the perplexities of models finished at both the smallest and largest."""
    budgets = []
    for tokens in sorted(points):
        rows = list(points[tokens])
        budgets.append({"tokens": tokens, "n": len(rows), "failed": (failed or {}).get(tokens, 0),
                        "predictors": summarize(rows, list(PREDICTORS), "val_ppl", resamples=resamples,
                                                confidence=confidence, seed=seed)})
    agreement = None
    if len(points) >= 2:
        low, high = min(points), max(points)
        first = {p["archid"]: p["val_ppl"] for p in points[low]}
        pairs = [(first[p["archid"]], p["val_ppl"]) for p in points[high] if p["archid"] in first]
        coefficients = correlate([a for a, _ in pairs], [b for _, b in pairs], resamples=resamples,
                                 confidence=confidence, seed=seed)
        agreement = {"from_tokens": low, "to_tokens": high, "n": len(pairs),
                     **{k: c.to_dict() for k, c in coefficients.items()}}
    return {"budgets": budgets, "agreement": agreement, "resamples": resamples, "confidence": confidence,
            "seed": seed}


def format_interval(c: Mapping[str, Any], digits: int = 2) -> str:
    """'-0.95 [-1.00, -0.69]' for a coefficient with its interval; the estimate alone when it has none."""
    if c["estimate"] is None:
        return "undefined"
    if c["low"] is None:
        return f"{c['estimate']:+.{digits}f}"
    return f"{c['estimate']:+.{digits}f} [{c['low']:+.2f}, {c['high']:+.2f}]"


def _excluded(failed: int) -> str:
    return f" {failed} failed or cancelled and excluded." if failed else ""


def interpret(result: Mapping[str, Any], *, planned: int) -> str:
    """One paragraph on the largest budget with enough finished models: the coefficients with their intervals, the
    verdict (inconclusive when the interval spans zero), a better baseline when there is one, the agreement between
    budgets, and what the paper's figure is about. ``planned``: models per budget."""
    usable = [b for b in result["budgets"] if b["n"] >= MIN_MODELS]
    if not usable:
        done = max((b["n"] for b in result["budgets"]), default=0)
        failed = max((b.get("failed", 0) for b in result["budgets"]), default=0)
        return (f"Not enough trained models yet: {done} of {planned} finished.{_excluded(failed)} A rank correlation "
                f"needs at least {MIN_MODELS}.")
    budget = usable[-1]
    n, tokens = budget["n"], budget["tokens"]
    excluded = _excluded(budget.get("failed", 0))
    proxy = budget["predictors"]["proxy"]
    rho, tau = proxy["spearman"], proxy["kendall"]
    partial = f" (partial: {n} of {planned} models so far)" if n < planned else ""
    parts = [f"Short-run ranking after {tokens:,} tokens per model, {n} models{partial}: the proxy against validation "
             f"perplexity has Spearman rho {format_interval(rho)} and Kendall tau {format_interval(tau)} "
             f"({result['confidence']:.0%} bootstrap intervals).{excluded}"]
    verdict = rho.get("verdict", "undefined")
    share = proxy.get("concordance")
    pairs = f"The larger model of a pair reached the lower perplexity in {share:.0%} of pairs. " if share is not None else ""
    if verdict == "too_small":
        p = tau.get("p_value")
        test = f" (Kendall p = {p:.2f})" if p is not None else ""
        parts.append(f"{n} models are too small a sample to judge{test}: below {JUDGE_MODELS} models, or while the "
                     f"exact test's p is {JUDGE_P} or more, even a perfect ranking can be chance and the bootstrap "
                     f"interval is not meaningful. Train more models ({RECOMMENDED_MODELS} or more) before relying "
                     "on the proxy.")
    elif verdict == "negative":
        strength = "strong" if rho["estimate"] <= -0.8 else "moderate" if rho["estimate"] <= -0.5 else "weak"
        parts.append(f"{pairs}That is {strength} support for ranking this space by the proxy on this data at this "
                     "budget" + ("." if strength == "strong" else
                                 ": train the candidates you would pick rather than trust small proxy differences."))
    elif verdict == "positive":
        parts.append(f"{pairs}The proxy ranked these models backwards at this budget (larger models had higher "
                     "perplexity, typically because they are further from trained): do not pick candidates by the "
                     "proxy for training this short.")
    elif verdict == "inconclusive":
        parts.append(f"Inconclusive: the interval includes zero, so {n} models at this budget neither confirm nor refute "
                     f"the proxy. Train more models ({RECOMMENDED_MODELS} or more, ideally with two seeds) or longer "
                     "before relying on it.")
    else:
        parts.append("The coefficient is undefined (every model has the same proxy or the same perplexity).")
    own = rho["estimate"]
    for name in ("total_params", "d_model"):
        other = budget["predictors"][name]["spearman"]
        if own is None or other["estimate"] is None:
            continue
        if other["estimate"] < own - 0.1:
            parts.append(f"Ranked by {PREDICTORS[name]} alone they came out better (rho {format_interval(other)}).")
        elif abs(other["estimate"] - own) < 0.005:
            parts.append(f"Ranked by {PREDICTORS[name]} alone they come out the same (rho {format_interval(other)}): these "
                         "models cannot tell the proxy from it; models of equal proxy but different shapes could.")
    agreement = result.get("agreement")
    if agreement and agreement["n"] >= MIN_MODELS and agreement["spearman"]["estimate"] is not None:
        settled = "has largely settled" if agreement["spearman"]["estimate"] >= 0.9 else "still changes with training"
        parts.append(f"The rankings after {agreement['from_tokens']:,} and {agreement['to_tokens']:,} tokens agree with "
                     f"rho {format_interval(agreement['spearman'])} over {agreement['n']} models: the ranking {settled}.")
    if n < RECOMMENDED_MODELS and verdict not in ("inconclusive", "too_small"):
        parts.append(f"With {n} models a bootstrap interval is rough (it understates the uncertainty of so few); "
                     f"{RECOMMENDED_MODELS} or more give a trustworthy one.")
    parts.append(_PAPER)
    return " ".join(parts)
