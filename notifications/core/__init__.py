"""The webhook machinery without Django: which addresses a webhook may reach, how a body is signed, how it is sent.
Importable from a notebook or a receiver's own code (``verify``)."""
from __future__ import annotations

from notifications.core.webhooks import *  # noqa: F403 - re-exported: the package's public names
from notifications.core.webhooks import __all__  # noqa: F401 - the package's public names are the module's
