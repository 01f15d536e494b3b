"""Every state change of datasets, training runs and zoo models goes through a do_* function (STYLE.md), one module
per domain: datasets, training (runs, the worker's side, the reaper), zoo (measurements, import, delete).

User mistakes raise a ConfigError whose ``errors`` map a field to a message (the API answers 400 with them; the
worker fails the run with them, never retries); a change refused in the object's current state raises
lts_web.errors.Conflict (409). Callers import from here: ``from models_zoo import services``.
"""
from __future__ import annotations

from lts_web.errors import Conflict
from models_zoo.core import HISTORY_POINTS, thin_history
from models_zoo.services.datasets import *  # noqa: F403 - re-exported: the package's public names
from models_zoo.services.datasets import __all__ as _datasets
from models_zoo.services.training import *  # noqa: F403 - re-exported: the package's public names
from models_zoo.services.training import __all__ as _training
from models_zoo.services.zoo import *  # noqa: F403 - re-exported: the package's public names
from models_zoo.services.zoo import __all__ as _zoo

__all__ = ["Conflict", "HISTORY_POINTS", "thin_history", *_datasets, *_training, *_zoo]
