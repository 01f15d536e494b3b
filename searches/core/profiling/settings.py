"""What to measure and how hard to try: ProfileSettings, validated field by field."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from searches.core.arch import Architecture, ConfigError

__all__ = [
    "BACKENDS",
    "DECODE_STEPS",
    "DEVICES",
    "DTYPES",
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
    # Untimed runs before the timed ones, at least 1. The first is also the memory measurement. Two, because the
    # second run of a fresh process is still slow: 5-15% above the later ones in onnxruntime (1.61 s against 1.37 s
    # and 1.35 s, 14.04M model), 0-15% in torch (bench/profiling.py, 20 architectures).
    warmup: int = 2
    rel_tolerance: float = 0.02
    # Repeat until the median's 95% CI is within rel_tolerance, at least min_repeats times; stop at max_repeats, or
    # after max_seconds of timed runs once min_repeats are done. At seq 1024 a forward takes 0.5-3.5 s here and a
    # candidate's budget is 8.1 s: the larger models stop at 2 repeats, the smaller get up to ~2 s of them. More
    # repeats in one process buy little: the process-to-process spread (3-10%: where the weights land, what the host
    # does) is larger than the spread within one (~1-3%).
    min_repeats: int = 2
    max_repeats: int = 50
    max_seconds: float = 2.0

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for name, allowed in (("backend", BACKENDS), ("mode", MODES), ("dtype", DTYPES), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                errors[name] = f"must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
        for name, low in (("batch_size", 1), ("seq_len", 1), ("threads", 1), ("warmup", 1), ("min_repeats", 2),
                          ("max_repeats", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                errors[name] = f"must be an integer, got {value!r}"
            elif value < low:
                errors[name] = f"must be at least {low}, got {value}"
        for name in ("rel_tolerance", "max_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                errors[name] = f"must be a positive number, got {value!r}"
        if "rel_tolerance" not in errors and self.rel_tolerance >= 1:
            errors["rel_tolerance"] = f"must be below 1 (a fraction of the median), got {self.rel_tolerance!r}"
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
        object.__setattr__(self, "rel_tolerance", float(self.rel_tolerance))
        object.__setattr__(self, "max_seconds", float(self.max_seconds))

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
