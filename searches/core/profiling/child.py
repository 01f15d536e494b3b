"""What runs inside the fresh child processes: build, export, measure memory, then latency.

Each function takes a JSON-like payload and returns a picklable dict; ``child_main`` sends it (or the failure) to the
parent through a pipe. Nothing here is called in the parent process.
"""
from __future__ import annotations

import gc
import inspect
import os
import platform
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

from searches.core.arch import Architecture, build_model

from .host_speed import HostGate
from .limits import largest_dims, machine_limit_errors
from .settings import DECODE_STEPS, ProfileSettings
from .stats import LatencyStats, repeat_until_stable

__all__ = ["Unavailable", "child_main"]

_SEED = 0
_MiB = 1024 * 1024  # "MB" as the reference reports its ONNX file size: bytes / 1024**2


class Unavailable(Exception):
    """The device or backend is missing here: reported as such, not as a crash."""


def child_main(conn: Any, target: str, payload: dict[str, Any]) -> None:
    """Entry point of a child: run ``target`` and send ("ok", result) | ("unavailable", msg) | ("error", text)."""
    # The inherited imports are ~430k objects: a full collection scans them in 0.2 s (per candidate, and again whenever
    # one falls inside a timed run). Frozen, they are never scanned; freezing is a constant-time list splice.
    gc.freeze()
    try:
        _inject(payload.get("fault"))
        runner: Callable[[dict[str, Any]], dict[str, Any]] = {
            "torch": _torch_child, "export": _export_child, "onnxruntime": _ort_child,
        }[target]
        conn.send(("ok", runner(payload)))
    except Unavailable as exc:
        conn.send(("unavailable", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the parent must get it as text
        summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        conn.send(("error", (summary, traceback.format_exc())))
    finally:
        conn.close()


def _inject(fault: str | None) -> None:
    """Test hook: fail the way real children fail (segfault, hard exit, hang, exception)."""
    if fault == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "exit":
        os._exit(3)
    elif fault == "hang":
        time.sleep(3600)
    elif fault == "raise":
        raise RuntimeError("injected failure")


def _quiet() -> None:
    """The exporter and transformers log dozens of harmless warnings per model (no torchvision, deprecations)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _status_kb(*keys: str) -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in keys:
                values[name] = int(value.split()[0])
    return values


def _ru_maxrss_kb() -> int:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if platform.system() == "Darwin" else rss  # bytes on macOS, kB elsewhere


class _HostMemory:
    """Peak resident memory added since ``start()``.

    Linux: VmHWM reset through /proc/self/clear_refs ("5", kernel >= 4.0), so the peak counts from here, and the
    kernel tracks it (tracemalloc sees neither torch nor onnxruntime allocations). Elsewhere ru_maxrss, which cannot
    be reset but starts near the inherited resident size in a fresh child.
    """

    def start(self) -> None:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.method = "vmhwm"
            self.base_kb = _status_kb("VmRSS")["VmRSS"]
        except (OSError, KeyError):
            self.method = "ru_maxrss"
            self.base_kb = _ru_maxrss_kb()

    def restart_peak(self) -> None:
        """Forget the peak so far (keeping the baseline): later peaks count from the memory resident now."""
        if self.method == "vmhwm":
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")

    def peak_added_mb(self) -> float:
        peak_kb = _status_kb("VmHWM")["VmHWM"] if self.method == "vmhwm" else _ru_maxrss_kb()
        return max(peak_kb - self.base_kb, 0) / 1024


def _cpu_snapshot() -> tuple[float, list[int], float] | None:
    """(monotonic time, /proc/stat's first line as ticks, this process's CPU seconds), or None without /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    own = os.times()
    return time.monotonic(), ticks, own.user + own.system


def _background_cpu(start: tuple[float, list[int], float] | None) -> dict[str, float] | None:
    """Cores that OTHER processes kept busy, and cores the hypervisor stole, on average since ``start``.

    A shared machine can slow a whole measurement by 30-50% with no sign in its spread (all repeats slow alike), so
    the load is recorded next to the figure for whoever has to judge it.
    """
    end = _cpu_snapshot()
    if start is None or end is None or end[0] <= start[0]:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    delta = [b - a for a, b in zip(start[1], end[1])]
    # user nice system idle iowait irq softirq steal ...
    busy = (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / hz
    wall = end[0] - start[0]
    return {"other_processes": round(max(busy - (end[2] - start[2]), 0.0) / wall, 3),
            "steal": round(delta[7] / hz / wall, 3) if len(delta) > 7 else 0.0}


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _libc_functions(*names: str) -> tuple[Any, ...] | None:
    """The C library's functions of these names (this process's own), or None where one is missing (not glibc)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        return tuple(getattr(libc, name) for name in names)
    except (OSError, AttributeError):
        return None


def _mallopt(*settings: tuple[int, int]) -> bool:
    """glibc's mallopt for each (parameter, value); False where there is no mallopt (not glibc) or it refuses."""
    found = _libc_functions("mallopt")
    return found is not None and all(found[0](param, value) == 1 for param, value in settings)


def _map_large_blocks() -> bool:
    """glibc: map every block over 128 KiB when allocated and unmap it when freed, for the memory run.

    128 KiB is glibc's own starting threshold, but by default it moves: each freed mapped block raises it to that
    block's size (up to 32 MiB), so later blocks come from the heap, whose freed memory stays resident. How far it
    has moved depends on the order of earlier frees, which differs from process to process: the same model's peak
    differed by up to 6.4% (412-438 MB) between five fresh processes here. Set explicitly, the threshold stays put;
    the peak is then what the model holds at once, the same within 0.05% in every process (400 MB for that model).
    """
    return _mallopt((_M_MMAP_THRESHOLD, 128 * 1024))


def _keep_freed_memory() -> bool:
    """glibc: from now on, serve large blocks from the heap and keep freed memory for reuse. True if applied.

    Without it (by default, and after _map_large_blocks) glibc maps large blocks afresh and unmaps them when freed:
    at sequence 1024 the logits alone (1024 x 50,257 floats, 196 MiB) cost ~50,000 page faults per forward, 10% of
    a 16M model's latency here, and their cost swings with the host's memory traffic (process medians spread 17%
    with them, 6% without, in six alternating pairs of processes). A serving process on jemalloc or tcmalloc, as
    PyTorch's CPU tuning guides advise, reuses the memory as this does. Called after the memory run.
    """
    return _mallopt((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1))


def _grow_heap(nbytes: int) -> bool:
    """glibc, after _keep_freed_memory: allocate nbytes from the heap, touch every page, free it. True if done.

    The freed block stays resident at the heap's top, and the next forward's blocks are carved from it: without
    this, the first forward after the memory run (whose blocks were mapped and unmapped) faults its pages in and
    was 5.7% slower than the later ones (16.04M model, 1.167 / 1.172 s against medians of 1.104 / 1.106 s); with it,
    the same (0.999 / 0.993), for ~0.35 ms per MB. So the memory run is the only untimed run (warmup 1)."""
    import ctypes

    found = _libc_functions("malloc", "free") if nbytes > 0 else None
    if found is None:
        return False
    malloc, free = found
    malloc.restype, malloc.argtypes, free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    block = malloc(nbytes)
    if not block:
        return False
    ctypes.memset(block, 0, nbytes)
    free(block)
    return True


def _input_ids(arch: Architecture, batch: int, length: int, salt: int) -> Any:
    """Random token ids, seeded: zeros would read one embedding row only."""
    import torch

    gen = torch.Generator().manual_seed(_SEED + salt)
    return torch.randint(0, arch.vocab_size, (batch, length), generator=gen)


def _build(arch: Architecture, device: str) -> Any:
    """build_model's GPT2LMHeadModel, its weights filled from one seeded 4 MiB block of N(0, 0.02) values.

    build_model's initializers draw every weight (kaiming-uniform, then normal): 1.2 s of the 12 s a 43.75M
    candidate costs, 0.05 s this way. Speed does not depend on the values as long as they are ordinary floats
    (no denormals, NaN or zeros), which a tiled normal block guarantees.
    """
    import torch

    model = build_model(arch, device="meta", seed=None)
    if any(True for _ in model.buffers()):  # uninitialized buffers (masks) could change the work: do it the long way
        return build_model(arch, device=device, seed=_SEED)
    model.to_empty(device=device)  # new, untied tensors: tie lm_head to wte again (one copy, as build_model has)
    model.tie_weights()
    gen = torch.Generator(device=device).manual_seed(_SEED)
    block = torch.randn(1 << 20, generator=gen, device=device).mul_(0.02)
    with torch.no_grad():
        for param in model.parameters():
            flat = param.view(-1)
            for start in range(0, flat.numel(), block.numel()):
                chunk = flat[start:start + block.numel()]
                chunk.copy_(block[:chunk.numel()])
    return model.eval()


def _param_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())  # counts the tied wte/lm_head once


def _load(payload: dict[str, Any]) -> tuple[Architecture, ProfileSettings]:
    """The architecture and settings, checked again here before any thread or tensor exists: from_dict applies the
    absolute caps, machine_limit_errors this machine's cores and memory (a payload built by other means than
    profile(), e.g. from a measurement row written directly, cannot start a million threads)."""
    _quiet()
    arch, settings = Architecture.from_dict(payload["arch"]), ProfileSettings.from_dict(payload["settings"])
    errors = machine_limit_errors(settings, largest_dims(arch))
    if errors:
        raise Unavailable("; ".join(f"{k}: {v}" for k, v in errors.items()))
    return arch, settings


def _torch_child(payload: dict[str, Any]) -> dict[str, Any]:
    import torch

    arch, s = _load(payload)
    cuda = s.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise Unavailable("device 'cuda' requested but torch sees no usable CUDA GPU on this machine")
    torch.set_num_threads(s.threads)
    torch.set_default_dtype(getattr(torch, s.dtype))  # parameters born in the dtype: no float32 copy in the peak
    prompt = _input_ids(arch, s.batch_size, s.seq_len, 0).to(s.device)
    steps = _input_ids(arch, s.batch_size, DECODE_STEPS, 1).to(s.device)
    sync: Callable[[], None] = torch.cuda.synchronize if cuda else (lambda: None)
    phases: dict[str, float] = {}

    host = _HostMemory()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        cuda_base = torch.cuda.memory_allocated()
    else:
        _map_large_blocks()
        host.start()
    t0 = time.perf_counter()
    model = _build(arch, s.device)
    phases["build"] = time.perf_counter() - t0
    param_bytes = _param_bytes(model)
    # Peaks count from here: the weights stay counted (resident now), not how they were made. (build_model's own
    # initialization, the fallback above, allocates lm_head before tying it to wte: vocab x d_model floats, 110 MiB
    # at d_model 576, freed at once, which a model loaded from a checkpoint never does; at seq 64 that transient
    # would be most of the "peak".)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        host.restart_peak()

    with torch.inference_mode():
        if s.mode == "prefill":
            def run() -> None:
                model(input_ids=prompt, use_cache=False)
        else:
            # transformers 5.24 (pinned) names the KV cache `cache`; earlier 5.x releases, as on some GPU images,
            # `past_key_values`. A cache keyword the model ignored would time decoding without a cache: checked.
            keyword = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
            out = model(input_ids=prompt, use_cache=True)
            cache = getattr(out, keyword)
            model(input_ids=steps[:, :1], use_cache=True, **{keyword: cache})
            if cache.get_seq_length() != prompt.shape[1] + 1:
                raise RuntimeError(f"the KV cache holds {cache.get_seq_length()} positions after one decode step, "
                                   f"expected {prompt.shape[1] + 1}")
            cache.crop(-1)

            def run() -> None:
                for i in range(DECODE_STEPS):
                    model(input_ids=steps[:, i:i + 1], use_cache=True, **{keyword: cache})
                cache.crop(-DECODE_STEPS)  # back to the prompt: every sample decodes at the same context length

        t0 = time.perf_counter()
        run()  # the first warm-up run, and the memory measurement
        sync()
        if cuda:
            peak_mb, method = (torch.cuda.max_memory_allocated() - cuda_base) / _MiB, "cuda_max_memory_allocated"
        else:
            peak_mb, method = host.peak_added_mb(), host.method
            if _keep_freed_memory():  # what the forward allocated beyond the weights, resident again
                _grow_heap(int(peak_mb * _MiB) - param_bytes)
        phases["memory"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(s.warmup - 1):
            run()
        sync()
        phases["warmup"] = time.perf_counter() - t0
        per_sample = DECODE_STEPS if s.mode == "decode" else 1

        def timed() -> float:
            sync()
            start = time.perf_counter()
            run()
            sync()
            return (time.perf_counter() - start) / per_sample

        gate = None if cuda else _host_gate(payload, s)
        t0, cpu0 = time.perf_counter(), _cpu_snapshot()
        latency = _repeat(gate.timed(timed) if gate else timed, s)
        phases["latency"] = time.perf_counter() - t0
    return {
        "latency": latency, "peak_memory_mb": peak_mb, "memory_method": method, "param_bytes": param_bytes,
        "phases": phases, "cuda_device": torch.cuda.get_device_name() if cuda else None,
        "background_cpu": _background_cpu(cpu0), "host": gate.summary() if gate else None,
    }


def _export_child(payload: dict[str, Any]) -> dict[str, Any]:
    """Export the prefill graph (logits only) to workdir/model.onnx, the weights to model.onnx.data."""
    import torch

    from . import export_registry  # noqa: F401 - inherited from the forkserver, built here otherwise

    arch, s = _load(payload)
    torch.set_num_threads(s.threads)
    t0 = time.perf_counter()
    model = _build(arch, "cpu")
    build_s = time.perf_counter() - t0

    class LogitsOnly(torch.nn.Module):
        # transformers 5 returns a ModelOutput holding a cache object, which the exporter cannot flatten.
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, use_cache=False).logits

    workdir = payload["workdir"]
    path = os.path.join(workdir, "model.onnx")
    t0 = time.perf_counter()
    # external_data=True: the weights are written straight to model.onnx.data; one protobuf file costs 1.5 s more on
    # the 16M model (4.3 s against 2.8 s). optimize=False would save ~0.3 s but onnxruntime then spends ~0.2 s more
    # optimizing the session itself.
    torch.onnx.export(LogitsOnly(model), (_input_ids(arch, s.batch_size, s.seq_len, 0),), path, dynamo=True,
                      external_data=True, optimize=True, verbose=False, input_names=["input_ids"],
                      output_names=["logits"])
    export_s = time.perf_counter() - t0
    file_bytes = sum(os.path.getsize(os.path.join(workdir, f)) for f in os.listdir(workdir))
    return {"path": path, "onnx_file_bytes": file_bytes, "param_bytes": _param_bytes(model),
            "phases": {"build": build_s, "export": export_s}}


def _ort_child(payload: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime as ort

    arch, s = _load(payload)
    feed = {"input_ids": _input_ids(arch, s.batch_size, s.seq_len, 0).numpy()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = s.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: constant folding warns about every CastLike node
    phases: dict[str, float] = {}

    host = _HostMemory()
    _map_large_blocks()
    host.start()
    t0 = time.perf_counter()
    session = ort.InferenceSession(payload["path"], options, providers=["CPUExecutionProvider"])
    phases["session"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    session.run(None, feed)  # the first warm-up run, and the memory measurement
    peak_mb = host.peak_added_mb()
    _keep_freed_memory()
    phases["memory"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(s.warmup - 1):
        session.run(None, feed)
    phases["warmup"] = time.perf_counter() - t0

    def timed() -> float:
        start = time.perf_counter()
        session.run(None, feed)
        return time.perf_counter() - start

    gate = _host_gate(payload, s)
    t0, cpu0 = time.perf_counter(), _cpu_snapshot()
    latency = _repeat(gate.timed(timed) if gate else timed, s)
    phases["latency"] = time.perf_counter() - t0
    return {"latency": latency, "peak_memory_mb": peak_mb, "memory_method": host.method, "phases": phases,
            "background_cpu": _background_cpu(cpu0), "host": gate.summary() if gate else None}


def _host_gate(payload: dict[str, Any], s: ProfileSettings) -> HostGate | None:
    """The host-speed check around the timed runs (None when host_wait_s is 0). The probe runs on torch's threads,
    set to the measurement's count (onnxruntime's child too), so the reference is per thread count."""
    import torch

    if not s.host_wait_s:
        return None
    torch.set_num_threads(s.threads)
    return HostGate(payload.get("host_reference_s"), tolerance=s.host_tolerance, wait_s=s.host_wait_s)


def _repeat(timed: Callable[[], float | None], s: ProfileSettings) -> LatencyStats:
    return repeat_until_stable(timed, rel_tolerance=s.rel_tolerance, min_repeats=s.min_repeats,
                               max_repeats=s.max_repeats, max_seconds=s.max_seconds)
