"""Which architectures a proxy check trains: K drawn to span the proxy range, not K drawn at random.

A uniform draw from a search space follows its density (gpt2-lts spans 0.1M to 55M non-embedding parameters, but a
tenth of its 5,880 architectures lie below 1.25M and a tenth above 27.6M), and a rank correlation over models of
nearly equal size measures noise. So the pool (the whole space when it has at most ``MAX_POOL`` architectures, else
that many random draws; or a search's candidates) is cut into K bins of equal width in log(proxy) between its smallest
and largest member, and one architecture is drawn uniformly from each bin. A bin with no member (a search's
candidates cluster) gives its draw to the untaken architecture nearest its centre, so the sample always has K
distinct archids. Deterministic for a seed.

Equal-width rather than equal-count (quantile) bins: over 20 seeds of 8 draws from gpt2-lts, quantile bins spanned a
median of 1.42 decades of the proxy, no better than uniform draws (1.50); equal log-width bins 2.16 (never below 2.08).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from searches.core.arch import Architecture, ConfigError
from searches.core.space import SearchSpace

__all__ = ["MAX_POOL", "SampleError", "pool_from_space", "stratified_sample"]

# gpt2-lts (5,880) is enumerated whole; a larger custom space is represented by this many random draws, which places
# every quantile bin edge within ~1% of its true rank (binomial standard error sqrt(p(1-p)/n) <= 0.0035).
MAX_POOL = 20_000


class SampleError(ConfigError):
    """The pool cannot give K distinct architectures. ``errors`` maps ``sample_size`` to the message."""


def pool_from_space(space: SearchSpace, *, seed: int = 0, max_pool: int = MAX_POOL) -> list[Architecture]:
    """Every architecture of the space, or ``max_pool`` random draws of a larger one (deduplicated)."""
    if space.size <= max_pool:
        return list(space)
    rng = np.random.default_rng([seed, 1])  # a stream apart from the one stratified_sample uses
    seen: dict[str, Architecture] = {}
    for _ in range(max_pool):
        arch = space.sample(rng)
        seen.setdefault(arch.archid, arch)
    return list(seen.values())


def stratified_sample(pool: Sequence[Architecture], k: int, *, seed: int = 0) -> list[int]:
    """Indices into ``pool`` of ``k`` distinct architectures (by archid), one per bin of equal width in
    log(non-embedding parameters), ordered by increasing proxy."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SampleError({"sample_size": f"must be a positive integer, got {k!r}"})
    first: dict[str, int] = {}
    for index, arch in enumerate(pool):
        first.setdefault(arch.archid, index)
    if len(first) < k:
        raise SampleError({"sample_size": f"asks for {k} architectures, the pool has only {len(first)} distinct ones"})
    ordered = np.asarray(sorted(first.values(), key=lambda i: (pool[i].non_embedding_params, pool[i].archid)))
    logs = np.log([float(pool[i].non_embedding_params) for i in ordered])
    low, width = logs[0], (logs[-1] - logs[0]) / k
    bins = np.minimum(((logs - low) / width).astype(int), k - 1) if width > 0 else np.arange(len(logs)) * k // len(logs)
    rng = np.random.default_rng([seed, 0])
    taken = np.zeros(len(ordered), dtype=bool)
    empty = []
    for b in range(k):
        members = np.flatnonzero(bins == b)
        if len(members):
            taken[members[rng.integers(len(members))]] = True
        else:
            empty.append(b)
    for b in empty:  # nearest untaken member to the bin's centre (log scale)
        centre = low + (b + 0.5) * width
        distance = np.where(taken, np.inf, np.abs(logs - centre))
        taken[int(np.argmin(distance))] = True
    return [int(i) for i in ordered[taken]]
