"""profile(): run the measurement in fresh child processes, with a time limit, and assemble the result."""
from __future__ import annotations

import datetime as _dt
import multiprocessing
import multiprocessing.connection
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from searches.core.arch import Architecture

from .child import child_main
from .device import available_backends, describe_device, gpu_names, library_versions
from .limits import largest_dims, machine_limit_errors
from .settings import ProfileSettings
from .stats import LatencyStats

__all__ = ["ProfileResult", "ProfilingError", "profile"]

# Imported once by the forkserver and inherited by every child: ~4 s of imports (modeling_gpt2 alone takes 2 s) that
# each measurement would otherwise pay, and the ONNX exporter's op registry (export_registry: 0.5-0.9 s an export).
# Imports only: running torch ops there would start thread pools before fork.
# multiprocessing skips a name that fails to import.
_PRELOAD = [
    "torch", "transformers", "transformers.models.gpt2.modeling_gpt2", "onnxruntime", "onnx", "onnxscript",
    "onnxscript.function_libs.torch_lib.ops", "torch.onnx._internal.exporter._core", "searches.core.arch",
    "searches.core.profiling.child", "searches.core.profiling.export_registry",
]
_KILL_GRACE_S = 5.0
# Fastest host-speed probe this process's measurements have seen (host_speed.HostGate's reference), per backend and
# thread count: the same probe runs ~5-10% slower in an onnxruntime child than in a torch one. One list per key,
# appended and min'ed: safe enough across threads (a lost update only forgets one probe).
_host_references: dict[tuple[str, int], list[float]] = {}
_context_lock = threading.Lock()
_context: Any = None
# (backend, threads, device) this process has measured with: the first measurement of each is preceded by a warm-up.
# The first measurements of a fresh worker were 2-3x slower than their siblings' (120.7 ms against 34.9 ms for one
# architecture) and one became a frontier point: a new process's first children meet cold page and CPU caches and a
# host-speed check with no reference yet (a calibration taken while the stack's other workers still start up).
_warmed: set[tuple[str, int, str]] = set()
_warmed_lock = threading.Lock()
# The warm-up: the same architecture and settings, a few short repeats; its figures are discarded.
_WARMUP_SETTINGS = {"min_repeats": 2, "max_repeats": 5, "max_seconds": 0.5}


class ProfilingError(RuntimeError):
    """A measurement failed; there is no partial result.

    ``reason``: "timeout" (killed at the time limit), "crashed" (a signal such as SIGSEGV or the OOM killer's
    SIGKILL, or an exit without a result), "error" (an exception in the child; ``details`` holds its traceback) or
    "unavailable" (the device or backend is missing on this machine).
    """

    def __init__(self, reason: str, message: str, details: str = ""):
        self.reason = reason
        self.details = details
        super().__init__(message)


@dataclass(frozen=True)
class ProfileResult:
    archid: str
    arch: dict[str, Any]
    settings: dict[str, Any]  # every ProfileSettings field
    latency: LatencyStats  # seconds
    # MB (2**20 bytes) that loading and running the model add to a fresh process's peak resident memory. torch: the
    # weights plus the peak of the first run (not build_model's construction transient); onnxruntime: creating the
    # session plus the first run, as a deployment loads it. On CUDA: torch.cuda.max_memory_allocated, same scope.
    peak_memory_mb: float
    memory_method: str  # "vmhwm" | "ru_maxrss" | "cuda_max_memory_allocated"
    param_bytes: int
    onnx_file_bytes: int | None  # model.onnx + model.onnx.data (onnxruntime only): what the reference calls memory
    device: dict[str, Any]  # describe_device(), plus "cuda_device" when measured on a GPU
    versions: dict[str, str]
    # The whole call: process start, build, export, memory and latency (and, on a process's first call, the
    # forkserver's one-time start, ~4-7 s).
    wall_time_s: float
    phases_s: dict[str, float] = field(default_factory=dict)  # build, export, session, memory, warmup, latency;
    # worker_warmup: a process's first measurement per backend, threads and device is preceded by a discarded one
    # Cores kept busy by other processes, and stolen by the hypervisor, during the timed runs (None without /proc).
    background_cpu: dict[str, float] | None = None
    # The host-speed check around the timed runs (host_speed.HostGate.summary(): reference and probe times, runs
    # discarded, seconds spent waiting); None when it was off (host_wait_s 0, or a GPU).
    host: dict[str, Any] | None = None
    measured_at: str = ""  # UTC, ISO 8601

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the latency samples as a list)."""
        data = asdict(self)
        data["latency"]["samples"] = list(self.latency.samples)
        return data


def profile(
    arch: Architecture,
    settings: ProfileSettings | None = None,
    *,
    timeout_s: float = 600.0,
    _fault: Literal["crash", "exit", "hang", "raise"] | None = None,
) -> ProfileResult:
    """Measure the latency and peak memory of ``arch`` on this machine, in fresh child processes.

    torch: one child builds the model, measures the memory of one run (the first warm-up), then the latency.
    onnxruntime: one child builds and exports into a per-call temporary directory, a second one (whose memory the
    export cannot pollute) loads the session and measures. ``timeout_s`` bounds the children's time in all; a child
    that crashes, raises or runs past it gives ProfilingError and no result. On a CPU, timed runs wait out slow
    phases of the host (settings.host_wait_s; the fastest probe seen is kept across calls as the reference).
    ``_fault`` is a test hook that makes the (first) child crash, exit, hang or raise before measuring.

    Callers that are scripts need the ``if __name__ == "__main__":`` guard: children re-import the main module.
    """
    settings = settings or ProfileSettings()
    settings.check_arch(arch)
    beyond = machine_limit_errors(settings, largest_dims(arch))
    if beyond:  # no child is forked for what this machine cannot run (each child checks again)
        raise ProfilingError("unavailable", "; ".join(f"{k}: {v}" for k, v in beyond.items()))
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    if settings.backend not in available_backends():
        raise ProfilingError("unavailable", f"backend {settings.backend!r} is not installed here "
                                            f"(available: {', '.join(available_backends()) or 'none'})")
    if settings.device == "cuda" and not gpu_names():
        raise ProfilingError("unavailable", "device 'cuda' requested but this machine has no NVIDIA GPU")
    started = time.monotonic()
    budget = _Budget(timeout_s)
    phases: dict[str, float] = {}
    key = (settings.backend, settings.threads, settings.device)
    with _warmed_lock:
        cold = key not in _warmed
        _warmed.add(key)
    if cold and _fault is None:
        warm_started = time.monotonic()
        warm = ProfileSettings.from_dict({**settings.to_dict(), **_WARMUP_SETTINGS})
        try:
            _measure_once(arch, warm, budget, None)
        except ProfilingError:
            with _warmed_lock:
                _warmed.discard(key)
            raise
        phases["worker_warmup"] = time.monotonic() - warm_started
    measured, param_bytes, onnx_file_bytes, child_phases = _measure_once(arch, settings, budget, _fault)
    phases.update(child_phases)
    device = describe_device()
    if measured.get("cuda_device"):
        device["cuda_device"] = measured["cuda_device"]
    return ProfileResult(
        archid=arch.archid, arch=arch.to_dict(), settings=settings.to_dict(), latency=measured["latency"],
        peak_memory_mb=measured["peak_memory_mb"], memory_method=measured["memory_method"], param_bytes=param_bytes,
        onnx_file_bytes=onnx_file_bytes, device=device, versions=library_versions(),
        wall_time_s=time.monotonic() - started, phases_s=phases, background_cpu=measured["background_cpu"],
        host=measured.get("host"),
        measured_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def _measure_once(arch: Architecture, settings: ProfileSettings, budget: _Budget,
                  fault: str | None) -> tuple[dict[str, Any], int, int | None, dict[str, float]]:
    """One measurement in fresh children: (the measuring child's result, parameter bytes, ONNX file bytes, phases).
    Its host-speed probe lowers the reference of the later measurements with the same backend and threads."""
    payload: dict[str, Any] = {"arch": arch.to_dict(), "settings": settings.to_dict(), "fault": fault}
    onnx_file_bytes: int | None = None
    phases: dict[str, float] = {}
    references = _host_references.setdefault((settings.backend, settings.threads), [])
    payload["host_reference_s"] = min(references, default=None)
    if settings.backend == "torch":
        measured = _run_child("torch", payload, budget)
        param_bytes = measured["param_bytes"]
    else:
        # A directory per call, made and removed by the parent, so a killed child leaves nothing behind (archai
        # exports every candidate to the same tmp/model.onnx: two concurrent profiles overwrite each other).
        with tempfile.TemporaryDirectory(prefix="lts-profile-") as workdir:
            exported = _run_child("export", {**payload, "workdir": workdir}, budget)
            measured = _run_child("onnxruntime", {**payload, "fault": None, "path": exported["path"]}, budget)
        param_bytes, onnx_file_bytes = exported["param_bytes"], exported["onnx_file_bytes"]
        phases.update(exported["phases"])
    phases.update(measured["phases"])
    if measured.get("host"):
        references.append(measured["host"]["reference_ms"] / 1e3)
        references[:] = [min(references)]
    return measured, param_bytes, onnx_file_bytes, phases


class _Budget:
    """Seconds left for the children of one profile() call."""

    def __init__(self, total_s: float):
        self.total_s = total_s
        self.left_s = total_s


def _mp_context() -> Any:
    """The forkserver context, its preload set before the server starts (a server already running keeps its own
    preload: children then import torch themselves, ~4 s each, and still measure correctly)."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload(_PRELOAD)
            else:  # pragma: no cover - Windows: every child pays the imports
                _context = multiprocessing.get_context("spawn")
        return _context


def _run_child(target: str, payload: dict[str, Any], budget: _Budget) -> dict[str, Any]:
    """Run ``child_main(target, payload)`` in a fresh process and return its result, or raise ProfilingError."""
    ctx = _mp_context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=child_main, args=(sender, target, payload), daemon=True, name=f"lts-profile-{target}")
    proc.start()  # blocks while the forkserver starts (once per process): not charged to the budget
    started = time.monotonic()
    sender.close()
    message: tuple[str, Any] | None = None
    try:
        ready = multiprocessing.connection.wait([receiver, proc.sentinel], timeout=max(budget.left_s, 0.0))
        if receiver in ready:
            try:
                message = receiver.recv()
            except EOFError:  # died before sending anything
                message = None
        elif not ready:
            raise ProfilingError("timeout", f"profiling timed out: the {target} child was still running when the "
                                            f"time limit ({budget.total_s:g} s) ran out, and was killed")
    finally:
        budget.left_s -= time.monotonic() - started
        if message is None and proc.is_alive():
            proc.kill()
        proc.join(_KILL_GRACE_S)
        receiver.close()
    if message is None:
        code = proc.exitcode
        if code is not None and code < 0:
            hint = " (as the kernel's out-of-memory killer does)" if code == -signal.SIGKILL else ""
            why = f"killed by {_signal_name(-code)}{hint}"
        else:
            why = f"exited with code {code} without a result"
        raise ProfilingError("crashed", f"profiling child ({target}) crashed: {why}")
    status, value = message
    if status == "ok":
        return value
    if status == "unavailable":
        raise ProfilingError("unavailable", value)
    summary, details = value
    raise ProfilingError("error", f"profiling failed in the {target} child: {summary}", details)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
