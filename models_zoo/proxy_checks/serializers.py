"""REST serializers of proxy checks: parse and validate; writes happen in models_zoo.proxy_checks.services."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from lts_web.fields import IdField
from lts_web.serializers import RefuseUnknownFields
from models_zoo.models import Dataset
from models_zoo.permissions import visible
from models_zoo.proxy_checks import services
from models_zoo.proxy_checks.models import ProxyCheck
from models_zoo.serializers import resolve_team
from searches.permissions import visible_searches


class ProxyCheckSerializer(serializers.ModelSerializer):
    """A check with its result (``result.budgets[].predictors.{proxy,total_params,d_model}.{spearman,kendall}``:
    estimate, low, high, verdict; ``result.agreement`` between budgets; ``result.sentence``) and, in the detail, one
    row per drawn architecture with its runs (``models``)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    dataset_name = serializers.CharField(source="dataset.name", read_only=True, default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ProxyCheck
        fields = ["id", "name", "team", "team_name", "owner", "status", "preset", "space", "search", "dataset",
                  "dataset_name", "dataset_description", "tokenizer", "sample_size", "seed", "budgets", "config",
                  "progress", "result", "cancel_requested", "created_at", "finished_at", "updated_at"]
        read_only_fields = fields

    def get_progress(self, check: ProxyCheck) -> dict[str, int]:
        """Runs per status (over every budget)."""
        counts = {status: 0 for status in ("queued", "running", "completed", "failed", "cancelled")}
        for m in services.members(check):
            counts[m.run.status] += 1
        return {**counts, "total": sum(counts.values())}


class ProxyCheckDetailSerializer(ProxyCheckSerializer):
    models = serializers.SerializerMethodField()

    class Meta(ProxyCheckSerializer.Meta):
        fields = ProxyCheckSerializer.Meta.fields + ["sample", "models"]
        read_only_fields = fields

    def get_models(self, check: ProxyCheck) -> list[dict[str, Any]]:
        return services.model_rows(check)


class ProxyCheckCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    """One source (``preset``, ``space`` or a finished ``search``), a dataset id, a tokenizer spec, K, the token budget
    per model and shared training settings."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    team = IdField(required=False, help_text="team id; default: the dataset's team")
    preset = serializers.CharField(required=False, allow_blank=True, help_text="a search-space preset")
    space = serializers.JSONField(required=False, allow_null=True, help_text="a search-space document")
    search = IdField(required=False, allow_null=True,
                                      help_text="a finished search of your teams: draw from its candidates")
    dataset = IdField()
    tokenizer = serializers.CharField(max_length=1000, default="bpe:4096",
                                      help_text="gpt2-files:DIR | bpe:VOCAB_SIZE | dir:DIR (DIR under LTS_DATA_ROOT)")
    sample_size = serializers.IntegerField(default=12, min_value=services.MIN_SAMPLE, max_value=services.MAX_SAMPLE,
                                           help_text="K: architectures to train, drawn across the proxy range")
    max_tokens = serializers.IntegerField(min_value=1, help_text="training budget per model, in tokens")
    compare_budget = serializers.BooleanField(default=False,
                                              help_text="also train every model for 2 x max_tokens and report "
                                                        "how well the two rankings agree")
    seed = serializers.IntegerField(default=1, min_value=0, max_value=services.MAX_SEED)
    config = serializers.JSONField(required=False, default=dict,
                                   help_text="TrainConfig settings shared by every run (seq_len 128 and batch_size 16 "
                                             "unless given; lr, warmup_steps, ...); not the budget")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        user = self.context["request"].user
        dataset = visible(Dataset, user).select_related("team").filter(pk=attrs["dataset"]).first()
        if dataset is None:
            raise serializers.ValidationError({"dataset": "no such dataset in your teams"})
        attrs["dataset"] = dataset
        attrs["team"] = resolve_team(user, attrs.get("team"), default=dataset.team)
        if attrs.get("search") is not None:
            search = visible_searches(user).filter(pk=attrs["search"]).first()
            if search is None:
                raise serializers.ValidationError({"search": "no such search in your teams"})
            attrs["search"] = search
        if not isinstance(attrs.get("config"), dict):
            raise serializers.ValidationError({"config": "must be a JSON object of training settings"})
        return attrs
