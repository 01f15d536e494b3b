"""Training settings written for a reader (a run's page, a proxy check's page): kept apart from the views so that a
page that shows them does not import the zoo's API, and with it torch."""
from __future__ import annotations

import json
from typing import Any

from lts_web import numbers
from models_zoo.core import BUDGET_KEYS

__all__ = ["settings_items"]

_OFF_AT_ZERO = frozenset({"grad_clip", "eval_interval", "checkpoint_interval"})


def settings_items(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Training settings (a run's, a proxy check's; templates/models_zoo/_settings.html) as the pages write them for
    a reader, never a Python repr: a limit not set is "no limit", a setting 0 turns off is "off", yes/no, floats to
    significant digits (min_lr 0.00006, not 5.9999999999999995e-05) and counts with separators (lts_web.numbers), a
    pair such as betas "0.9, 0.95"."""
    def text(key: str, value: Any) -> str:
        if value is None:
            return "no limit" if key in BUDGET_KEYS else "none"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (int, float)):
            if value == 0 and key in _OFF_AT_ZERO:
                return "off"
            return numbers.count(value) if isinstance(value, int) else numbers.significant(value)
        if isinstance(value, (list, tuple)):
            return ", ".join(text("", item) for item in value)
        return json.dumps(value) if isinstance(value, dict) else str(value)
    return [(key, text(key, value)) for key, value in sorted(config.items())]
