"""One way to write each quantity on every page (the template filters in lts_web.templatetags.lts_numbers and
LTS.latency/memory/params/tokens/number in searches/static/searches/common.js write the same text; a browser test
compares them):

- latency in ms below 10 s ("47.5 ms", "1,234 ms"), in s above ("12.3 s");
- memory in MB ("133 MB", "1,234 MB");
- parameters with k/M/B ("133k", "1.23M"), the exact count beside them for a hover title ("132,736");
- tokens, and other counts, with thousands separators ("1,048,576");
- other floats to 3 significant digits, never an exponent ("0.00006", "14,380").

Rounding is half away from zero on the shortest decimal that round-trips the float, as JavaScript's Intl does.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["DASH", "count", "latency", "memory", "params", "significant"]

DASH = "–"
SIGNIFICANT = 3
# Latencies up to 10 s read better in ms; a 12 s forward pass is a different regime.
LATENCY_MS_BELOW_S = 10.0


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def significant(value, digits: int = SIGNIFICANT) -> str:
    """digits significant figures with separators, whole numbers from 10**digits up: 0.0123456 -> "0.0123",
    14380.2 -> "14,380", 5.9999999999999995e-05 -> "0.00006"."""
    x = _number(value)
    if x is None:
        return DASH
    d = Decimal(repr(x))
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{d.quantize(Decimal(1), rounding=ROUND_HALF_UP):,f}"
    exponent = d.adjusted() - digits + 1
    rounded = d.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
    if rounded.adjusted() > d.adjusted() and abs(rounded) >= 10 ** digits:  # 999.6 -> 1,000
        return f"{rounded.quantize(Decimal(1)):,f}"
    text = f"{rounded:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def latency(seconds) -> str:
    """Seconds -> "47.5 ms" below 10 s, "12.3 s" from there."""
    x = _number(seconds)
    if x is None:
        return DASH
    if abs(x) < LATENCY_MS_BELOW_S:
        return f"{significant(x * 1000)} ms"
    return f"{significant(x)} s"


def memory(megabytes) -> str:
    """MB -> "133 MB"."""
    x = _number(megabytes)
    return DASH if x is None else f"{significant(x)} MB"


def params(n) -> str:
    """132736 -> "133k", 1234567 -> "1.23M", 999 -> "999"."""
    x = _number(n)
    if x is None:
        return DASH
    text = significant(x)
    for scale, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "B")):  # 999,999 rounds to "1,000k": it is "1M"
        if abs(float(text.replace(",", ""))) < 1000:
            break
        text = f"{significant(x / scale)}"
        if abs(float(text.replace(",", ""))) < 1000 or suffix == "B":
            return text + suffix
    return text


def count(n) -> str:
    """Tokens, steps and other counts: 1048576 -> "1,048,576"."""
    x = _number(n)
    return DASH if x is None else f"{Decimal(repr(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP):,f}"
