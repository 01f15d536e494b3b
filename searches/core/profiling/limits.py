"""What a machine can measure: profiling settings against a device's cores and memory.

ProfileSettings holds the bounds that are true on any machine (settings.MAX_THREADS ...). These are the ones that
depend on the machine: the web layer checks them against a registered device's hardware (describe_device(), stored
on the Device row), the profiler against the machine it runs on, before it forks a child or starts a thread.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .settings import MAX_PROFILE_SECONDS, MAX_THREADS, ProfileSettings

__all__ = ["device_limit_errors", "largest_dims", "machine_limit_errors", "working_memory_mb"]

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def working_memory_mb(dims: Mapping[str, int], batch_size: int, seq_len: int, dtype: str = "float32") -> float:
    """A lower bound of the memory one forward pass needs, in MB (2**20 bytes): the weights (token and position
    embeddings included), the logits of every position and one layer's q/k/v and MLP activations.

    A lower bound on purpose (no attention scores: SDPA may not materialize them; no allocator slack), so a refusal
    is certain not to fit. GPT-2 124M at batch 1 x 1024 in float32: 475 MB of weights + 196 MB of logits + 25 MB.
    ``dims`` has n_layer, d_model, d_inner, vocab_size and max_sequence_length (an Architecture's, or a space's
    maxima: largest_dims).
    """
    d, di, vocab = dims["d_model"], dims["d_inner"], dims["vocab_size"]
    per_layer = 4 * d * d + 2 * d * di + 9 * d + di  # arch.non_embedding_params without the final 2d
    params = dims["n_layer"] * per_layer + 2 * d + (vocab + dims["max_sequence_length"]) * d
    activations = batch_size * seq_len * (vocab + 4 * d + di)
    return (params + activations) * _BYTES.get(dtype, 4) / 2**20


def largest_dims(source: Any) -> dict[str, int]:
    """The largest value of each dimension of a SearchSpace (or an Architecture): an upper bound of every
    architecture's working memory, even when that combination itself is not valid."""
    keys = ("n_layer", "d_model", "d_inner", "vocab_size", "max_sequence_length")
    values = {k: getattr(source, k) for k in keys}
    return {k: max(v) if isinstance(v, (tuple, list)) else int(v) for k, v in values.items()}


def _cores(hardware: Mapping[str, Any]) -> int | None:
    for key in ("cpu_cores_usable", "cpu_cores_logical"):
        value = hardware.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
    return None


def device_limit_errors(settings: ProfileSettings, dims: Mapping[str, int] | None, hardware: Mapping[str, Any],
                        *, device_name: str, max_threads: int = MAX_THREADS,
                        max_seconds: float = MAX_PROFILE_SECONDS) -> dict[str, str]:
    """Field -> message for the settings a device cannot run: threads beyond its cores, a forward of the largest
    architecture (``dims``; None skips the check) beyond its RAM (GPU memory when measured on cuda and registered as
    ``gpu_memory_mb``), and the operator's caps ``max_threads`` and ``max_seconds`` (max_seconds, host_wait_s).
    ``hardware`` is describe_device() of the device ({} when not registered yet: only the operator's caps apply)."""
    errors: dict[str, str] = {}
    cores = _cores(hardware)
    if cores is not None and settings.threads > min(cores, max_threads):
        errors["threads"] = f"at most {min(cores, max_threads)} (the cores of device {device_name!r})"
    elif settings.threads > max_threads:
        errors["threads"] = f"at most {max_threads} (this server's limit, LTS_PROFILE_MAX_THREADS)"
    for name in ("max_seconds", "host_wait_s"):
        if getattr(settings, name) > max_seconds:
            errors[name] = f"at most {max_seconds:g} seconds (this server's limit, LTS_PROFILE_MAX_SECONDS)"
    if dims is not None:
        memory_key, what = ("gpu_memory_mb", "GPU memory") if settings.device == "cuda" else ("ram_mb", "memory")
        available = hardware.get(memory_key)
        if isinstance(available, (int, float)) and not isinstance(available, bool) and available > 0:
            need = working_memory_mb(dims, settings.batch_size, settings.seq_len, settings.dtype)
            if need > available:
                errors["batch_size"] = (f"batch_size x seq_len ({settings.batch_size:,} x {settings.seq_len:,}) needs "
                                        f"at least {need:,.0f} MB for the largest architecture, more than the "
                                        f"{available:,.0f} MB of {what} of device {device_name!r}")
    return errors


def machine_limit_errors(settings: ProfileSettings, dims: Mapping[str, int]) -> dict[str, str]:
    """device_limit_errors against the machine this runs on: never more threads than os.cpu_count(), never a forward
    larger than its RAM (CPU measurements). The profiler's own guard, whatever validated (or not) its settings."""
    from .device import describe_device

    hardware = {"cpu_cores_logical": os.cpu_count() or 1, "ram_mb": describe_device()["ram_mb"]}
    return device_limit_errors(settings, dims, hardware, device_name="this machine")
