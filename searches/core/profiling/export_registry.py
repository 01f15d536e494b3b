"""The ONNX exporter's op registry, built once per process instead of once per export.

torch.onnx.export (dynamo) rebuilds its registry of ATen-to-ONNX functions on every call: 0.45 s here, 0.9 s the first
time in a process. The profiler's forkserver imports this module (runner._PRELOAD), so the registry is built there
once and every export child inherits it: one build per worker instead of one per candidate. Each export still gets
its own copy (the exporter adds custom ops to the registry it is given). If torch's private layout changes, nothing
is patched and exports build their registry as before.
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["install"]

_installed = False


def install() -> bool:
    """Make ONNXRegistry.from_torchlib cached by its arguments (a copy per call) and build the default one now.

    True if the cache is in place.
    """
    global _installed
    if _installed:
        return True
    try:
        from torch.onnx._internal.exporter import _registration

        registry_cls = _registration.ONNXRegistry
        build = registry_cls.from_torchlib.__func__  # type: ignore[attr-defined]  # a classmethod: its function
    except (ImportError, AttributeError):
        return False
    built: dict[tuple[Any, ...], Any] = {}

    def from_torchlib(cls: type, *args: Any, **kwargs: Any) -> Any:
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in built:
            built[key] = build(cls, *args, **kwargs)
        registry = copy.copy(built[key])
        registry.functions = {target: list(metas) for target, metas in built[key].functions.items()}
        return registry

    registry_cls.from_torchlib = classmethod(from_torchlib)  # type: ignore[method-assign,assignment]  # the patch itself
    registry_cls.from_torchlib()
    _installed = True
    return True


install()
