"""The browser form of a new proxy check. It only parses; models_zoo.proxy_checks.services validates and writes, and its field
errors (sample_size, config.seq_len, dataset, tokenizer, space.d_model ...) are shown next to the matching input."""
from __future__ import annotations

from typing import Any

from django import forms

from models_zoo.core import trainer
from models_zoo.forms import TOKENIZER_HELP, _TeamChoice, json_object
from models_zoo.proxy_checks import services
from searches.core.arch import ARCH_LIMITS
from searches.core.space import PRESETS


class ProxyCheckForm(_TeamChoice):
    name = forms.CharField(max_length=200, required=False, help_text="default: proxy check on the dataset")
    team = forms.TypedChoiceField(coerce=int)
    source = forms.ChoiceField(label="Architectures from",
                               help_text="a preset space, a finished search's candidates, or the space pasted below")
    space = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
                            help_text='JSON, e.g. {"n_layer": [1, 2, 4], "d_model": {"range": [64, 320, 64]}, '
                                      '"d_inner": [256, 512], "n_head": [2, 4], "max_sequence_length": 128}')
    dataset = forms.TypedChoiceField(coerce=int)
    tokenizer = forms.CharField(max_length=1000, initial="bpe:4096", help_text=TOKENIZER_HELP)
    sample_size = forms.IntegerField(label="Models (K)", min_value=services.MIN_SAMPLE, max_value=services.MAX_SAMPLE,
                                     initial=12, help_text="drawn across the proxy range; 20 or more for a tight "
                                                           "interval")
    max_tokens = forms.IntegerField(label="Tokens per model", min_value=1, max_value=trainer.MAX_TOKENS, initial=131_072,
                                    help_text="the training budget of every model")
    compare_budget = forms.BooleanField(required=False, label="Also train at 2 × the budget",
                                        help_text="reports how well the two rankings agree (doubles the runs)")
    seq_len = forms.IntegerField(min_value=1, max_value=ARCH_LIMITS["max_sequence_length"],
                                 initial=services.DEFAULT_CONFIG["seq_len"])
    batch_size = forms.IntegerField(min_value=1, max_value=trainer.MAX_BATCH_TOKENS,
                                    initial=services.DEFAULT_CONFIG["batch_size"])
    lr = forms.FloatField(min_value=0.0, max_value=1.0, initial=6e-4, label="Learning rate")
    seed = forms.IntegerField(min_value=0, max_value=services.MAX_SEED, initial=1,
                              help_text="of the draw and of the bootstrap")
    extra = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
                            label="More settings", help_text='JSON of other TrainConfig fields, e.g. {"warmup_steps": 20}')

    def __init__(self, *args, datasets=(), searches=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [(d.pk, f"{d.name} ({d.describe()})") for d in datasets]
        self.fields["source"].choices = (
            [(f"preset:{name}", f"preset {name} ({space.size:,} architectures)") for name, space in PRESETS.items()]
            + [(f"search:{s.pk}", f"search #{s.pk} {s.name} ({(s.counts or {}).get('candidates', 0):,} candidates)")
               for s in searches]
            + [("space", "the space below")])

    def clean_space(self) -> dict[str, Any] | None:
        return json_object(self.cleaned_data["space"])

    def clean_extra(self) -> dict[str, Any]:
        return json_object(self.cleaned_data["extra"]) or {}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("source") == "space" and not data.get("space") and "space" not in self.errors:
            self.add_error("space", "paste a space, or choose a preset or a search above")
        return data

    def source_kwargs(self) -> dict[str, Any]:
        """preset=..., search_id=... or space=... for the service."""
        kind, _, value = self.cleaned_data["source"].partition(":")
        if kind == "preset":
            return {"preset": value}
        if kind == "search":
            return {"search_id": int(value)}
        return {"space": self.cleaned_data["space"]}

    def train_config(self) -> dict[str, Any]:
        data = self.cleaned_data
        config = {k: data[k] for k in ("seq_len", "batch_size", "lr")}
        config["min_lr"] = min(data["extra"].get("min_lr", config["lr"] / 10), config["lr"])
        return {**config, **data["extra"]}
