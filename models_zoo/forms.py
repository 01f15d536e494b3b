"""HTML forms of the zoo pages. They only parse; models_zoo.services validates and writes, and its field errors
(architecture.n_head, config.seq_len, dataset, tokenizer ...) are shown next to the matching input."""
from __future__ import annotations

import json
from typing import Any

from django import forms

from models_zoo.core import trainer
from models_zoo.models import Dataset
from searches.core.arch import ARCH_LIMITS, ConfigError

TOKENIZER_HELP = ("bpe:VOCAB_SIZE trains a byte-level BPE on the dataset; gpt2-files:DIR loads the GPT-2 BPE "
                  "(encoder.json + vocab.bpe, or vocab.json + merges.txt) from DIR under the data root; dir:DIR "
                  "a saved Hugging Face tokenizer")


class _TeamChoice(forms.Form):
    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]

    def add_service_errors(self, exc: ConfigError, mapping: dict[str, str] | None = None) -> None:
        """Put each of the service's errors on its input (``mapping`` renames prefixes), the rest on the form."""
        for key, message in exc.errors.items():
            field = key
            for prefix, target in (mapping or {}).items():
                if key == prefix or key.startswith(prefix + "."):
                    field = target
                    message = f"{key.split('.', 1)[1]}: {message}" if "." in key else message
            self.add_error(field if field in self.fields else None, message)


class DatasetForm(_TeamChoice):
    name = forms.CharField(max_length=200)
    team = forms.TypedChoiceField(coerce=int)
    kind = forms.ChoiceField(choices=Dataset.Kind.choices, initial=Dataset.Kind.UPLOAD)
    file = forms.FileField(required=False, help_text="a UTF-8 text file")
    path = forms.CharField(required=False, max_length=1000, help_text="a .txt file or a folder of .txt files, "
                                                                       "relative to the data root")
    hub_name = forms.CharField(required=False, max_length=300, label="Hub dataset", help_text="e.g. wikitext")
    hub_config = forms.CharField(required=False, max_length=200, label="Hub config",
                                 help_text="e.g. wikitext-2-raw-v1")
    hub_split = forms.CharField(required=False, max_length=100, initial="train", label="Split")
    hub_text_field = forms.CharField(required=False, max_length=100, initial="text", label="Text field")
    hub_validation_split = forms.CharField(required=False, max_length=100, label="Validation split",
                                           help_text="empty: the last fraction of the text")
    validation_fraction = forms.FloatField(initial=0.1, min_value=0.0, max_value=1.0)


class TrainForm(_TeamChoice):
    name = forms.CharField(max_length=200, required=False, help_text="default: archid and dataset")
    team = forms.TypedChoiceField(coerce=int)
    architecture = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
                                   help_text='JSON, e.g. {"n_layer": 2, "d_model": 64, "d_inner": 256, "n_head": 2}')
    candidates = forms.CharField(required=False, widget=forms.HiddenInput)
    dataset = forms.TypedChoiceField(coerce=int)
    tokenizer = forms.CharField(max_length=1000, initial="bpe:4096", help_text=TOKENIZER_HELP)
    # The upper bounds are TrainConfig's (the service checks them again, with the combined ones): here they also
    # become the inputs' max attributes.
    max_steps = forms.IntegerField(required=False, min_value=1, max_value=trainer.MAX_STEPS, initial=1000)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=trainer.MAX_TOKENS)
    max_minutes = forms.FloatField(required=False, min_value=0.0, max_value=trainer.MAX_MINUTES)
    seq_len = forms.IntegerField(min_value=1, max_value=ARCH_LIMITS["max_sequence_length"], initial=256)
    batch_size = forms.IntegerField(min_value=1, max_value=trainer.MAX_BATCH_TOKENS, initial=16)
    grad_accum = forms.IntegerField(min_value=1, max_value=trainer.MAX_GRAD_ACCUM, initial=1,
                                    label="Gradient accumulation")
    lr = forms.FloatField(min_value=0.0, max_value=1.0, initial=6e-4, label="Learning rate")
    extra = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 70}),
                            label="More settings", help_text='JSON of other TrainConfig fields, e.g. {"warmup_steps": '
                                                             '50, "eval_interval": 100, "device": "cuda"}')

    def __init__(self, *args, datasets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].choices = [(d.pk, f"{d.name} ({d.describe()})") for d in datasets]

    def clean_architecture(self) -> dict[str, Any] | None:
        text = self.cleaned_data["architecture"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"invalid JSON: {exc}") from None

    def clean_candidates(self) -> list[int]:
        text = self.cleaned_data["candidates"]
        try:
            return [int(c) for c in text.split(",") if c.strip()]
        except ValueError:
            raise forms.ValidationError("candidate ids must be integers") from None

    def clean_extra(self) -> dict[str, Any]:
        return json_object(self.cleaned_data["extra"]) or {}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and bool(data.get("architecture")) == bool(data.get("candidates")):
            self.add_error("architecture", "paste an architecture config (or start from candidates of a search)")
        return data

    def train_config(self) -> dict[str, Any]:
        data = self.cleaned_data
        config = {k: data[k] for k in ("seq_len", "batch_size", "grad_accum", "lr") if data.get(k) is not None}
        config.update({k: data[k] for k in trainer.BUDGET_KEYS if data.get(k)})
        if "lr" in config:
            config["min_lr"] = min(data["extra"].get("min_lr", config["lr"] / 10), config["lr"])
        return {**config, **data["extra"]}


class ImportForm(_TeamChoice):
    source = forms.CharField(max_length=1000, label="Checkpoint", help_text="a folder under the data root, or "
                                                                            "hub:org/name[/subfolder] when online")
    name = forms.CharField(max_length=200, required=False)
    team = forms.TypedChoiceField(coerce=int)
    profile_device = forms.ChoiceField(required=False, label="Profile on")

    def __init__(self, *args, devices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile_device"].choices = [("", "no profiling")] + [(d.name, d.name) for d in devices]


def json_object(text: str) -> dict[str, Any] | None:
    """A form field's JSON object; None when blank; a field error otherwise."""
    text = text.strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError("must be a JSON object")
    return value
