"""What this machine is and what it can profile with; cheap, nothing heavy is imported."""
from __future__ import annotations

import copy
import functools
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
from typing import Any

__all__ = ["available_backends", "describe_device", "gpu_names", "library_versions"]

_LIBRARIES = ("torch", "transformers", "onnxruntime", "onnx", "onnxscript", "numpy")


def _proc_fields(path: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The first value of each wanted "key: value" line of a /proc file ({} when it is missing)."""
    found: dict[str, str] = {}
    try:
        with open(path) as fh:
            for line in fh:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in keys and name not in found:
                    found[name] = value.strip()
    except OSError:
        pass
    return found


def gpu_names() -> list[str]:
    """NVIDIA GPU names without importing torch (so without a CUDA context in this process)."""
    names: list[str] = []
    root = "/proc/driver/nvidia/gpus"
    if os.path.isdir(root):
        for bus in sorted(os.listdir(root)):
            model = _proc_fields(os.path.join(root, bus, "information"), ("Model",)).get("Model")
            if model:
                names.append(model)
    if not names and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            names = [line.strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            names = []
    return names


def describe_device() -> dict[str, Any]:
    """This machine: hostname, CPU model, cores, RAM, GPU names, OS and Python (a copy: callers may edit it)."""
    return copy.deepcopy(_describe_device())


@functools.lru_cache(maxsize=1)
def _describe_device() -> dict[str, Any]:
    cpu = _proc_fields("/proc/cpuinfo", ("model name",)).get("model name") or platform.processor() or "unknown"
    ram_kb = _proc_fields("/proc/meminfo", ("MemTotal",)).get("MemTotal", "0 kB").split()[0]
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # psutil is optional: only the physical core count needs it
        physical = None
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu,
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_physical": physical,
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_mb": round(int(ram_kb) / 1024),
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a measurement, read from package metadata (nothing is imported)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def available_backends() -> list[str]:
    """The backends this machine can profile with; onnxruntime also needs onnx and onnxscript for the export."""
    backends = ["torch"] if importlib.util.find_spec("torch") else []
    if backends and all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "onnxscript")):
        backends.append("onnxruntime")
    return backends
