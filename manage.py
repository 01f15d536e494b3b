#!/usr/bin/env python
"""Django's command-line utility for LTS Studio."""
import os
import sys
from pathlib import Path


def _stack_env() -> None:
    """While `make run` runs, commands in other terminals use its database, broker and settings: workers/stack.py
    writes them to var/stack.env and removes the file when it stops. What the environment already sets wins."""
    path = Path(os.environ.get("LTS_VAR_DIR") or Path(__file__).resolve().parent / "var") / "stack.env"
    try:
        values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        os.kill(int(values.pop("LTS_STACK_PID")), 0)  # a stack killed without its clean-up left the file behind
    except (OSError, KeyError, ValueError):
        return
    for key, value in values.items():
        os.environ.setdefault(key, value)


def main() -> None:
    _stack_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lts_web.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        # Read the settings first: Django keeps a settings error aside for some commands (makemigrations, shell)
        # and fails later with AppRegistryNotReady, which does not say what to set.
        settings.INSTALLED_APPS  # noqa: B018
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting's own message says what to set; a traceback adds nothing
        sys.exit(f"manage.py: {exc}")


if __name__ == "__main__":
    main()
