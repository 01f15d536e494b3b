"""The team page's form to add a webhook (the service checks it again, with the URL's addresses)."""
from __future__ import annotations

from django import forms

from notifications.core import EVENTS, MAX_SECRET_LENGTH, MAX_URL_LENGTH, MIN_SECRET_LENGTH
from searches.core.arch import ConfigError


class WebhookForm(forms.Form):
    url = forms.CharField(label="URL", max_length=MAX_URL_LENGTH, strip=False,
                          widget=forms.URLInput(attrs={"placeholder": "https://hooks.slack.com/services/…",
                                                       "size": 60}),
                          help_text="http:// or https://; a public address (private and local ones are refused)")
    secret = forms.CharField(required=False, strip=False, max_length=MAX_SECRET_LENGTH,
                             widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                             help_text=f"optional, {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters: signs every "
                                       "body (header X-LTS-Signature, see the README); not shown again")
    events = forms.MultipleChoiceField(choices=[(e, e) for e in EVENTS], initial=list(EVENTS),
                                       widget=forms.CheckboxSelectMultiple)

    def add_service_errors(self, exc: ConfigError) -> None:
        for key, message in exc.errors.items():
            self.add_error(key if key in self.fields else None, message)
