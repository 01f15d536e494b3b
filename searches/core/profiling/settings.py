"""What to measure and how hard to try: ProfileSettings, validated field by field."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from searches.core.arch import Architecture, ConfigError

__all__ = [
    "BACKENDS",
    "DECODE_STEPS",
    "DEVICES",
    "DTYPES",
    "MAX_BATCH_TOKENS",
    "MAX_PROFILE_SECONDS",
    "MAX_REPEATS",
    "MAX_THREADS",
    "MAX_WARMUP",
    "MODES",
    "ProfileSettings",
    "ProfileSettingsError",
]

BACKENDS = ("torch", "onnxruntime")
MODES = ("prefill", "decode")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")
# Tokens generated per decode sample: a sample is the mean of 8 single-token steps, ~20 ms per token at a 1000-token
# prompt on the 16M model, so ~170 ms per sample instead of ~20: well above timer and scheduler jitter.
# The prompt must leave room for them in the position table.
DECODE_STEPS = 8
# Upper bounds that hold on any machine; the service layer adds the device's own (cores, memory: limits.py), and the
# child refuses threads beyond its machine's cores. A million threads once exhausted the host's process ids.
# The largest x86 hosts have 2 x 192 cores, 768 hardware threads: 1024 refuses only what no machine has.
MAX_THREADS = 1024
# Tokens of one forward (batch_size x seq_len): 2**20 is 1024 sequences of 1024 tokens; the logits alone are then
# 2**20 x vocab x 4 bytes (200 GB at GPT-2's 50257), so a larger batch cannot be a latency anyone deploys.
MAX_BATCH_TOKENS = 2**20
# Warm-up runs and timed repeats: the defaults are 1 and 3-50; a median is stable long before 10,000 samples.
MAX_WARMUP = 100
MAX_REPEATS = 10_000
# Seconds of timed runs (max_seconds) and of waiting out a slow host (host_wait_s): an hour each. A worker's whole
# measurement is bounded by LTS_PROFILE_TIMEOUT_S (default 600 s), which the service layer also checks against.
MAX_PROFILE_SECONDS = 3600.0
_KEY_FIELDS = ("backend", "batch_size", "seq_len", "threads", "mode", "dtype", "device")


class ProfileSettingsError(ConfigError):
    """Profile settings are invalid. ``errors`` maps field name -> message."""


@dataclass(frozen=True)
class ProfileSettings:
    """How to measure. The ``cache_key()`` fields define a measurement; the others only how hard to try."""

    backend: str = "torch"
    batch_size: int = 1
    seq_len: int = 1024
    threads: int = 1
    mode: str = "prefill"
    dtype: str = "float32"
    device: str = "cpu"
    # Untimed runs before the timed ones, at least 1. The first is also the memory measurement. One is enough since
    # the timed runs keep freed memory and torch's child grows its heap after the memory run (child._grow_heap): the
    # second run of a fresh process was 5-15% slower than the later ones in onnxruntime and 0-15% in torch with
    # glibc's defaults (2026-11-26), 2.7-3.3% (onnxruntime) and 0.7% (torch) now (16.04M model, 2026-11-27, one
    # slow run among at least three timed ones does not move their median).
    warmup: int = 1
    rel_tolerance: float = 0.02
    # Repeat until the median's 95% CI is within rel_tolerance, at least min_repeats times; stop at max_repeats, or
    # after max_seconds of timed runs once min_repeats are done. At seq 1024 a forward takes 0.4-2.5 s here: the
    # larger models stop at 3 repeats, the smaller get up to ~2 s of them. Three, not two: the host's slow phases
    # can also be shorter than one run, slip between the host check's probes and slow one run by up to 60%; the
    # median of two is then their mean, of three it is a clean run (bench/profiling.py, BENCHMARKS.md).
    min_repeats: int = 3
    max_repeats: int = 50
    max_seconds: float = 2.0
    # CPU only (host_speed.HostGate): a timed run counts when a short compute probe before and after it runs within
    # host_tolerance of the fastest probe this worker has seen; otherwise it waits or is repeated, for at most
    # host_wait_s a measurement (0: no check). Other guests of a virtual machine's host slow it by 20-50% for 10-20 s
    # at a time, which no number of repeats in one process averages out.
    host_tolerance: float = 0.10
    host_wait_s: float = 20.0

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for name, allowed in (("backend", BACKENDS), ("mode", MODES), ("dtype", DTYPES), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                errors[name] = f"must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
        for name, low, high in (("batch_size", 1, MAX_BATCH_TOKENS), ("seq_len", 1, MAX_BATCH_TOKENS),
                                ("threads", 1, MAX_THREADS), ("warmup", 1, MAX_WARMUP), ("min_repeats", 2, MAX_REPEATS),
                                ("max_repeats", 2, MAX_REPEATS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                errors[name] = f"must be an integer, got {value!r}"
            elif value < low:
                errors[name] = f"must be at least {low}, got {value}"
            elif value > high:
                errors[name] = f"must be at most {high:,}, got {value:,}"
        if not {"batch_size", "seq_len"} & errors.keys() and self.batch_size * self.seq_len > MAX_BATCH_TOKENS:
            errors["batch_size"] = (f"batch_size x seq_len must be at most {MAX_BATCH_TOKENS:,} tokens, got "
                                    f"{self.batch_size:,} x {self.seq_len:,}")
        for name in ("rel_tolerance", "max_seconds", "host_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                errors[name] = f"must be a positive number, got {value!r}"
        if "max_seconds" not in errors and not self.max_seconds <= MAX_PROFILE_SECONDS:
            errors["max_seconds"] = f"must be at most {MAX_PROFILE_SECONDS:g} seconds, got {self.max_seconds!r}"
        value = self.host_wait_s
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_PROFILE_SECONDS:
            errors["host_wait_s"] = (f"must be a number of seconds from 0 (no check) to {MAX_PROFILE_SECONDS:g}, "
                                     f"got {value!r}")
        for name, of in (("rel_tolerance", "the median"), ("host_tolerance", "the reference probe")):
            if name not in errors and getattr(self, name) >= 1:
                errors[name] = f"must be below 1 (a fraction of {of}), got {getattr(self, name)!r}"
        if not {"min_repeats", "max_repeats"} & errors.keys() and self.max_repeats < self.min_repeats:
            errors["max_repeats"] = f"must be at least min_repeats ({self.min_repeats}), got {self.max_repeats}"
        if self.backend == "onnxruntime" and not errors.keys() & {"dtype", "mode", "device"}:
            # The exporter can emit float16 graphs, but onnxruntime's CPU provider lacks fp16/bf16 kernels for most
            # ops and inserts casts: the figure would not be a float16 latency.
            if self.dtype != "float32":
                errors["dtype"] = f"onnxruntime is measured in float32 only, got {self.dtype!r}; use backend torch"
            if self.device != "cpu":
                errors["device"] = "onnxruntime is measured on cpu only (its GPU memory is not observable); use torch"
            if self.mode != "prefill":
                errors["mode"] = ("decode is measured with the torch backend only (onnxruntime would need the KV "
                                  "cache as graph inputs and outputs)")
        if errors:
            raise ProfileSettingsError(errors)
        for name in ("rel_tolerance", "max_seconds", "host_tolerance", "host_wait_s"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProfileSettings:
        """Build from a JSON-like mapping (missing keys take the defaults); unknown keys are field errors."""
        if not isinstance(data, Mapping):
            raise ProfileSettingsError({"settings": f"must be a JSON object, got {type(data).__name__}"})
        known = {f.name for f in fields(cls)}
        unknown = {k: "unknown setting" for k in data if k not in known}
        if unknown:
            raise ProfileSettingsError(unknown)
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def cache_key(self) -> dict[str, Any]:
        """The fields that define a measurement; with the archid and the named machine, the cache's unique key."""
        return {k: getattr(self, k) for k in _KEY_FIELDS}

    def check_arch(self, arch: Architecture) -> None:
        """Raise ProfileSettingsError when the tokens do not fit the architecture's position table."""
        extra = DECODE_STEPS if self.mode == "decode" else 0
        if self.seq_len + extra > arch.max_sequence_length:
            plus = f" + {extra} generated tokens" if extra else ""
            raise ProfileSettingsError({"seq_len": f"{self.seq_len}{plus} exceeds the architecture's "
                                                   f"max_sequence_length ({arch.max_sequence_length})"})
