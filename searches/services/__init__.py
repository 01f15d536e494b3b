"""Every state change of devices, measurements and search jobs goes through a do_* function (STYLE.md)."""
from __future__ import annotations

from searches.services.jobs import *  # noqa: F403 - re-exported: the package's public names
from searches.services.jobs import __all__ as _jobs
from searches.services.measurements import *  # noqa: F403 - re-exported: the package's public names
from searches.services.measurements import __all__ as _measurements
from searches.services.predictor import *  # noqa: F403 - re-exported: the package's public names
from searches.services.predictor import __all__ as _predictor

__all__ = [*_jobs, *_measurements, *_predictor]
