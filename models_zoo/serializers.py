"""REST serializers of the model zoo: parse and validate; writes happen in models_zoo.services."""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from lts_web.fields import IdField
from lts_web.models import Membership, Team
from lts_web.serializers import RefuseUnknownFields
from models_zoo.core import BUDGET_KEYS
from models_zoo.models import Dataset, TrainingRun, ZooImport, ZooModel
from models_zoo.permissions import visible
from searches.models import Candidate, Device
from searches.permissions import visible_searches


def resolve_team(user, team_id: int | None, default: Team | None = None) -> Team:
    """The team a new object goes to: the given one (the user must be a member), else ``default``, else the
    user's first team."""
    memberships = Membership.objects.filter(user=user).select_related("team")
    if team_id is not None:
        membership = memberships.filter(team_id=team_id).first()
        if membership is None:
            raise serializers.ValidationError({"team": "you are not a member of this team"})
        return membership.team
    if default is not None:
        return default
    first = memberships.order_by("team__name").first()
    if first is None:
        raise serializers.ValidationError({"team": "you are in no team: ask an admin to add you to one"})
    return first.team


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    description = serializers.CharField(source="describe", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "team", "team_name", "owner", "kind", "path", "hub_name", "hub_config", "hub_split",
                  "hub_text_field", "hub_validation_split", "validation_fraction", "size_bytes", "description",
                  "created_at"]
        read_only_fields = fields


class DatasetCreateSerializer(serializers.Serializer):
    """JSON for a folder or hub dataset; multipart/form-data with ``file`` for an upload."""

    name = serializers.CharField(max_length=200)
    team = IdField(required=False, help_text="team id; default: your first team")
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices)
    path = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                 help_text="folder: a file or folder relative to LTS_DATA_ROOT")
    file = serializers.FileField(required=False, help_text="upload: a UTF-8 text file (LTS_MAX_UPLOAD_MB)")
    hub_name = serializers.CharField(required=False, allow_blank=True, max_length=300)
    hub_config = serializers.CharField(required=False, allow_blank=True, max_length=200)
    hub_split = serializers.CharField(required=False, allow_blank=True, max_length=100, default="train")
    hub_text_field = serializers.CharField(required=False, allow_blank=True, max_length=100, default="text")
    hub_validation_split = serializers.CharField(required=False, allow_blank=True, max_length=100)
    validation_fraction = serializers.FloatField(required=False, default=0.1, min_value=0.0, max_value=1.0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["team"] = resolve_team(self.context["request"].user, attrs.get("team"))
        if attrs["kind"] == Dataset.Kind.UPLOAD and "file" not in attrs:
            raise serializers.ValidationError({"file": "an upload needs a file (multipart/form-data)"})
        if attrs["kind"] == Dataset.Kind.FOLDER and not attrs.get("path"):
            raise serializers.ValidationError({"path": "a folder dataset needs a path relative to the data root"})
        if attrs["kind"] == Dataset.Kind.HUB and not attrs.get("hub_name"):
            raise serializers.ValidationError({"hub_name": "a hub dataset needs a dataset name"})
        return attrs


class TrainingRunSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True, default=None)
    progress_percent = serializers.IntegerField(read_only=True)
    zoo_model = serializers.SerializerMethodField()
    stop_reason = serializers.ChoiceField(
        choices=["max_steps", "max_tokens", "max_minutes", "cancelled", "failed"], read_only=True, allow_null=True,
        help_text="why a finished run stopped: the budget that ended it, cancelled, or failed (see error); "
                  "null while queued or running")

    class Meta:
        model = TrainingRun
        fields = ["id", "name", "team", "team_name", "owner", "status", "architecture", "archid", "trained_archid",
                  "candidate", "dataset", "dataset_name", "dataset_description", "tokenizer", "config", "step",
                  "total_steps", "progress_percent", "tokens_seen", "train_loss", "val_loss", "val_ppl",
                  "best_val_loss", "lr", "tokens_per_s", "eta_s", "elapsed_s", "history", "attempts", "resumed_from",
                  "cancel_requested", "error", "phase", "stop_reason", "zoo_model", "created_at", "started_at",
                  "finished_at", "updated_at"]
        read_only_fields = fields

    def get_zoo_model(self, run: TrainingRun) -> int | None:
        model = getattr(run, "zoo_model", None)
        return model.pk if model is not None else None


class TrainingRunListSerializer(TrainingRunSerializer):
    """The list leaves out the history (up to 500 points a run): GET the run for its loss curve."""

    class Meta(TrainingRunSerializer.Meta):
        fields = [f for f in TrainingRunSerializer.Meta.fields if f != "history"]
        read_only_fields = fields


class TrainingRunCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    """A candidate id or a pasted architecture config, a dataset id, a tokenizer spec and training settings (the
    budget may sit at the top level: max_steps, max_tokens, max_minutes)."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    team = IdField(required=False, help_text="team id; default: the dataset's team")
    candidate = IdField(required=False, allow_null=True, help_text="a candidate of your team's search")
    architecture = serializers.JSONField(required=False, allow_null=True, help_text="an architecture config")
    dataset = IdField()
    tokenizer = serializers.CharField(max_length=1000, help_text="gpt2-files:DIR | bpe:VOCAB_SIZE | dir:DIR "
                                                                 "(DIR relative to LTS_DATA_ROOT)")
    config = serializers.JSONField(required=False, default=dict, help_text="TrainConfig fields: lr, seq_len, "
                                                                          "batch_size, grad_accum, max_steps, ...")
    max_steps = serializers.IntegerField(required=False, min_value=1)
    max_tokens = serializers.IntegerField(required=False, min_value=1)
    max_minutes = serializers.FloatField(required=False, min_value=0.0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        if (attrs.get("candidate") is None) == (attrs.get("architecture") is None):
            raise serializers.ValidationError({"architecture": "give either an architecture config or a candidate"})
        dataset = visible(Dataset, user).select_related("team").filter(pk=attrs["dataset"]).first()
        if dataset is None:
            raise serializers.ValidationError({"dataset": "no such dataset in your teams"})
        attrs["dataset"] = dataset
        attrs["team"] = resolve_team(user, attrs.get("team"), default=dataset.team)
        if attrs.get("candidate") is not None:
            candidate = Candidate.objects.filter(pk=attrs["candidate"], job__in=visible_searches(user)).first()
            if candidate is None:
                raise serializers.ValidationError({"candidate": "no such candidate in your teams' searches"})
            attrs["candidate"] = candidate
        config = attrs.get("config")
        if not isinstance(config, dict):
            raise serializers.ValidationError({"config": "must be a JSON object of training settings"})
        attrs["config"] = {**config, **{k: attrs.pop(k) for k in BUDGET_KEYS if k in attrs}}
        return attrs


class MeasurementBriefSerializer(serializers.Serializer):
    """One latency/memory figure of a zoo model's architecture."""

    id = serializers.IntegerField()
    device = serializers.CharField(source="device.name")
    archid = serializers.CharField()
    backend = serializers.CharField()
    mode = serializers.CharField()
    batch_size = serializers.IntegerField()
    seq_len = serializers.IntegerField()
    threads = serializers.IntegerField()
    dtype = serializers.CharField()
    device_type = serializers.CharField()
    latency_s = serializers.FloatField(source="latency_median_s")
    latency_p10_s = serializers.FloatField()
    latency_p90_s = serializers.FloatField()
    memory_mb = serializers.FloatField(source="peak_memory_mb")


class ZooImportStatusSerializer(serializers.ModelSerializer):
    """Where a hub import stands: queued, running, completed (``model`` is the new zoo model) or failed (``error``)."""

    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = ZooImport
        fields = ["id", "source", "revision", "name", "team", "owner", "status", "attempts", "error", "model",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class ZooModelSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    proxy = serializers.IntegerField(source="non_embedding_params", read_only=True)
    measurements = serializers.SerializerMethodField()

    class Meta:
        model = ZooModel
        fields = ["id", "name", "team", "team_name", "owner", "archid", "source_archid", "config", "proxy",
                  "total_params", "source", "origin", "training_run", "val_loss", "val_ppl", "data_description",
                  "tokenizer_description", "budget_description", "tokens_seen", "size_bytes", "measurements",
                  "created_at"]
        read_only_fields = fields

    def get_measurements(self, model: ZooModel) -> list[dict[str, Any]]:
        grouped = self.context.get("measurements") or {}
        rows = [m for archid in model.archids for m in grouped.get(archid, [])]
        return MeasurementBriefSerializer(rows, many=True).data


class ZooImportSerializer(serializers.Serializer):
    """A Hugging Face GPT-2 checkpoint: ``path`` (a folder under LTS_DATA_ROOT) or ``hub_id``
    (org/name[/subfolder], when this machine is online)."""

    path = serializers.CharField(required=False, max_length=1000)
    hub_id = serializers.CharField(required=False, max_length=300)
    revision = serializers.CharField(required=False, max_length=100)
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    team = IdField(required=False, help_text="team id; default: your first team")
    profile_device = serializers.CharField(required=False, allow_blank=True,
                                           help_text="queue its latency/memory measurement on this device")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("path" in attrs) == ("hub_id" in attrs):
            raise serializers.ValidationError({"path": "give either a path under the data root or a hub_id"})
        attrs["team"] = resolve_team(self.context["request"].user, attrs.get("team"))
        device_name = attrs.pop("profile_device", "")
        attrs["profile_device"] = None
        if device_name:
            device = Device.objects.filter(name=device_name).first()
            if device is None:
                raise serializers.ValidationError({"profile_device": f"unknown device {device_name!r}"})
            attrs["profile_device"] = device
        attrs["source"] = attrs.pop("path") if "path" in attrs else "hub:" + attrs.pop("hub_id")
        return attrs


class GenerateSerializer(RefuseUnknownFields, serializers.Serializer):
    """A prompt and sampling settings. Ranges and this server's caps (LTS_GENERATE_*) are checked by
    models_zoo.core.generation.SamplingSettings; greedy ignores temperature, top_k and top_p."""

    prompt = serializers.CharField(trim_whitespace=False)
    max_new_tokens = serializers.IntegerField(required=False, help_text="1 to LTS_GENERATE_MAX_NEW_TOKENS (default 64)")
    temperature = serializers.FloatField(required=False, help_text="> 0 (default 1.0)")
    top_k = serializers.IntegerField(required=False, help_text="0 turns the top-k filter off (default 50)")
    top_p = serializers.FloatField(required=False, help_text="in (0, 1] (default 1.0)")
    repetition_penalty = serializers.FloatField(required=False, help_text="> 0; 1.0 is none (default)")
    greedy = serializers.BooleanField(required=False, help_text="argmax decoding (default false)")
    seed = serializers.IntegerField(required=False, allow_null=True, help_text="makes sampling repeatable")


class GenerationResultSerializer(serializers.Serializer):
    model = serializers.IntegerField()
    text = serializers.CharField(help_text="the completion, without the prompt")
    token_ids = serializers.ListField(child=serializers.IntegerField())
    prompt_tokens = serializers.IntegerField()
    stopped_by = serializers.ChoiceField(["eos", "max_new_tokens", "time_limit", "cancelled"])
    time_to_first_token_s = serializers.FloatField(help_text="in the worker, from the start of generate")
    tokens_per_s = serializers.FloatField(help_text="new tokens after the first, per second of decoding")
    generate_s = serializers.FloatField()
    queued_s = serializers.FloatField(help_text="from the request's arrival to a worker starting it")
    load_s = serializers.FloatField(help_text="loading the model; 0 when it was already loaded")
    loaded_from_cache = serializers.BooleanField()
    settings = serializers.DictField()


class GenerationStartSerializer(serializers.Serializer):
    model = serializers.IntegerField()
    loaded_from_cache = serializers.BooleanField()
    load_s = serializers.FloatField()
    queued_s = serializers.FloatField()
    worker_pid = serializers.IntegerField()


class GenerationTextSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="the new text")
    tokens = serializers.IntegerField(help_text="new tokens so far")


class GenerationErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    status = serializers.IntegerField(help_text="the HTTP status the non-streaming endpoint would answer")
    errors = serializers.DictField(child=serializers.CharField(), required=False, help_text="field -> message")


class GenerationEventSerializer(serializers.Serializer):
    """One server-sent event of generate/stream, as ``event: NAME`` and ``data: JSON`` lines and a blank line
    (``: keep-alive`` comment lines come between events while the model loads)."""

    event = serializers.ChoiceField(["start", "text", "done", "error"])
    data = PolymorphicProxySerializer(
        component_name="GenerationEventData", resource_type_field_name=None,
        serializers=[GenerationStartSerializer, GenerationTextSerializer, GenerationResultSerializer, GenerationErrorSerializer])
