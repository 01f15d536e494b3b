"""{% load lts_numbers %}: {{ m.latency_median_s|latency }}, {{ m.peak_memory_mb|memory }}, {{ n|params }} (a span
whose title is the exact count), {{ tokens|count }}, {{ x|significant }}, {{ when|ago }}. The rules are
lts_web.numbers'."""
from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from lts_web import numbers

register = template.Library()

register.filter("latency", numbers.latency)
register.filter("memory", numbers.memory)
register.filter("count", numbers.count)
register.filter("significant", numbers.significant)


@register.filter("params")
def params(n) -> str:
    """133k, with the exact count on hover."""
    if numbers._number(n) is None:
        return numbers.DASH
    return format_html('<span title="{}">{}</span>', numbers.count(n), numbers.params(n))


@register.filter("ago")
def ago(when: datetime | None) -> str:
    """"just now" under a minute, else Django's "5 minutes ago" ("0 minutes ago" says nothing)."""
    if when is None:
        return numbers.DASH
    if (timezone.now() - when).total_seconds() < 60:
        return "just now"
    return f"{timesince(when)} ago"
