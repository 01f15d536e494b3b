"""The API's JSON parser: DRF's, refusing with a 400 what would otherwise fail later as a 500.

- nesting deeper than MAX_DEPTH: 100,000 nested "[" raised RecursionError in the decoder, and a few hundred levels
  pass the decoder but not the code that walks a spec recursively (no spec is more than 4 levels deep);
- strings (keys or values) that no database column can hold: NUL (PostgreSQL refuses "\\u0000" in text and jsonb)
  and lone surrogates ("\\ud800": not encodable as UTF-8, on PostgreSQL and SQLite alike).
"""
from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

__all__ = ["MAX_DEPTH", "JSONParser", "check_document"]

MAX_DEPTH = 64


def _unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return "must not contain a NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain a lone surrogate (\\ud800-\\udfff): not valid Unicode"
    return None


def _shown(key: str) -> str:
    return json.dumps(key)[1:-1]  # escapes NUL and surrogates: the message names the key readably


def check_document(data: Any, max_depth: int = MAX_DEPTH) -> dict[str, str]:
    """Unstorable strings of a decoded JSON document by dotted path ("space.n_layer", "objectives.0"); ParseError
    beyond ``max_depth`` levels. Iterative: the depth is bounded here, not by Python's stack."""
    errors: dict[str, str] = {}
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                name = _shown(key) if isinstance(key, str) else str(key)
                child = f"{path}.{name}" if path else name
                if isinstance(key, str) and (problem := _unstorable(key)):
                    errors[child] = f"field name {problem}"
                stack.append((item, child, depth + 1))
        elif isinstance(value, str) and (problem := _unstorable(value)):
            errors[path or "body"] = problem
    return errors


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from None
        errors = check_document(data)
        if errors:
            raise ValidationError({path: [message] for path, message in sorted(errors.items())})
        return data
