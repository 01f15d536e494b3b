"""Serializer fields shared by the apps' APIs."""
from __future__ import annotations

import argparse
from typing import Any

from rest_framework import serializers

# Primary keys are BigAutoFields (settings.DEFAULT_AUTO_FIELD): a larger number cannot name a row, and looking it up
# overflows the database driver (SQLite: OverflowError; PostgreSQL: "bigint out of range"), a 500. The same bound as
# ids in query strings.
from lts_web.params import MAX_ID

__all__ = ["MAX_ID", "IdField", "id_argument"]


class IdField(serializers.IntegerField):
    """A row's id in a request body: an integer from 1 to MAX_ID."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


def id_argument(text: str) -> int:
    """argparse ``type`` of a command's row id (--follow, --candidate ...): a message, not a driver's overflow."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an id is a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"an id is from 1 to {MAX_ID}, got {text}")
    return value
