"""Hardware profiling: real inference latency and real peak memory of GPT-2 architectures.

``profile(arch, settings)`` builds the model (random weights, fixed seed) in a FRESH child process, measures the
memory that loading and one run add (high-water mark of resident memory; ``torch.cuda.max_memory_allocated`` on a
GPU), then the latency: warm-up, then repeats until the median's 95% confidence interval is within the tolerance or a
count/time cap. Children are forked from a ``forkserver`` that has torch, transformers and onnxruntime imported, so
one starts in milliseconds instead of the ~4 s of imports, and is still a process nothing else has touched.

Pure Python: imports neither Django nor Celery, and the parent process never imports torch.
"""
from __future__ import annotations

from .device import available_backends, describe_device, library_versions
from .limits import device_limit_errors, largest_dims, machine_limit_errors, working_memory_mb
from .runner import ProfileResult, ProfilingError, profile
from .settings import BACKENDS, DECODE_STEPS, DEVICES, DTYPES, MODES, ProfileSettings, ProfileSettingsError
from .stats import LatencyStats, latency_stats

__all__ = [
    "BACKENDS",
    "DECODE_STEPS",
    "DEVICES",
    "DTYPES",
    "MODES",
    "LatencyStats",
    "ProfileResult",
    "ProfileSettings",
    "ProfileSettingsError",
    "ProfilingError",
    "available_backends",
    "device_limit_errors",
    "largest_dims",
    "machine_limit_errors",
    "working_memory_mb",
    "describe_device",
    "latency_stats",
    "library_versions",
    "profile",
]
