"""Strict parsing of ids and counts read from query strings (and other text fields), for the API and the pages.

``str.isdigit()`` accepts "²" and "٣", which ``int()`` refuses (a 500), and ``int()`` takes any size, which the database
refuses (a 500 again: PostgreSQL's bigint and SQLite's INTEGER end at 2**63 - 1). A bad value is a :class:`BadQuery`:
lts_web.middleware.BadInputMiddleware answers it with a 400 naming the field, JSON under /api/, text on the pages.
"""
from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import BadRequest

__all__ = ["MAX_ID", "BadQuery", "parse_int", "query_id", "query_ids", "query_int"]

MAX_ID = 2**63 - 1  # the largest bigint (PostgreSQL) and INTEGER (SQLite): every primary key and counter fits


class BadQuery(BadRequest):
    """Query parameters that cannot be read; ``errors`` maps each parameter to its message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


def parse_int(text: str, low: int = 0, high: int = MAX_ID) -> int | None:
    """``text`` as an integer in [low, high] when it is made of ASCII digits only (no sign, no spaces), else None."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():  # 2**63 - 1 has 19 digits
        return None
    value = int(text)
    return value if low <= value <= high else None


def query_int(query: Mapping[str, str], name: str, low: int = 0, high: int = MAX_ID, *,
              errors: dict[str, str] | None = None) -> int | None:
    """The parameter as an integer in [low, high], None when absent or empty. A bad value raises BadQuery, or with
    ``errors`` is recorded there (every parameter's message at once) and read as None."""
    return _read(query, name, low, high, f"must be a whole number from {low} to {high}", errors)


def query_id(query: Mapping[str, str], name: str, *, errors: dict[str, str] | None = None) -> int | None:
    """An id parameter (1 to 2**63 - 1), as :func:`query_int`."""
    return _read(query, name, 1, MAX_ID, f"must be an id (a whole number from 1 to {MAX_ID})", errors)


def query_ids(values: list[str], name: str) -> list[int]:
    """Ids given as repeated parameters and/or comma-separated lists (empty items are skipped); BadQuery when one
    is not an id."""
    items = [item.strip() for value in values for item in value.split(",")]
    bad = [item for item in items if item and parse_int(item, 1) is None]
    if bad:
        raise BadQuery({name: f"must be ids (whole numbers from 1 to {MAX_ID}), got {', '.join(map(repr, bad))[:80]}"})
    return [int(item) for item in items if item]


def _read(query: Mapping[str, str], name: str, low: int, high: int, rule: str,
          errors: dict[str, str] | None) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    value = parse_int(text, low, high)
    if value is None:
        message = f"{rule}, got {text[:40]!r}"
        if errors is None:
            raise BadQuery({name: message})
        errors[name] = message
    return value
