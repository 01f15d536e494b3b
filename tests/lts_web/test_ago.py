"""The pages' one way to say when something happened: "just now" under a minute, never "0 minutes ago"."""
from __future__ import annotations

from datetime import timedelta

from django.template import Context, Template
from django.utils import timezone

from lts_web.templatetags.lts_numbers import ago


def test_ago_says_just_now_under_a_minute_and_the_time_since_after():
    now = timezone.now()
    assert ago(now) == "just now" and ago(now - timedelta(seconds=59)) == "just now"
    assert ago(now - timedelta(minutes=5, seconds=3)) == "5\xa0minutes ago"
    assert ago(now - timedelta(hours=2, minutes=1)) == "2\xa0hours, 1\xa0minute ago"
    assert ago(None) == "–"


def test_the_filter_renders_in_a_template():
    text = Template("{% load lts_numbers %}{{ when|ago }}").render(Context({"when": timezone.now()}))
    assert text == "just now"
