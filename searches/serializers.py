"""REST serializers: parse and validate; writes happen in searches.services."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from lts_web.fields import IdField
from lts_web.models import Membership
from lts_web.serializers import RefuseUnknownFields
from searches.core.arch import ARCH_LIMITS, Architecture, ConfigError
from searches.core.pareto import OBJECTIVES
from searches.core.profiling import BACKENDS, DEVICES, DTYPES, MODES, ProfileSettings, largest_dims
from searches.core.space import get_space
from searches.models import MEASUREMENT_KEY_FIELDS, Candidate, CostModelFit, Device, Measurement, SearchJob
from searches.services import profile_limit_errors
from searches.specs import SpecError, normalize_spec, profile_settings, space_of

SPEC_FIELDS = ("preset", "space", "objectives", "constraints", "device", "profiling", "algorithm", "params", "seed",
               "budget", "measure")


class DeviceSerializer(serializers.ModelSerializer):
    online = serializers.BooleanField(source="is_online", read_only=True)
    queue = serializers.CharField(read_only=True)
    queue_length = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = ["name", "hostname", "hardware", "backends", "online", "last_heartbeat", "registered_at",
                  "worker_name", "queue", "queue_length"]

    def get_queue_length(self, device: Device) -> int | None:
        lengths = self.context.get("queue_lengths") or {}
        return lengths.get(device.queue)


_DATETIME = serializers.DateTimeField()  # DRF's rendering of a datetime (settings' format, UTC as "Z")


class MeasurementSerializer(serializers.ModelSerializer):
    """Read-only. The fields are declared for the schema; to_representation builds the dict directly: a page of 100
    took 18 ms through DRF's per-field machinery, 10 ms so (bench/api.py where, one process, 2026-12-06)."""

    device = serializers.CharField(source="device.name", read_only=True)

    class Meta:
        model = Measurement
        fields = ["id", "archid", "config", "device", "backend", "batch_size", "seq_len", "threads", "mode", "dtype",
                  "device_type", "options", "status", "attempts", "error", "created_at", "started_at", "finished_at",
                  "latency_median_s", "latency_p10_s", "latency_p90_s", "latency_mean_s", "latency_std_s",
                  "latency_n", "peak_memory_mb", "param_bytes", "onnx_file_bytes", "wall_s", "details"]
        read_only_fields = fields

    _TIMES = ("created_at", "started_at", "finished_at")

    def to_representation(self, m: Measurement) -> dict[str, Any]:
        out = {name: getattr(m, name) for name in self.Meta.fields}
        out["device"] = m.device.name
        for name in self._TIMES:
            value = out[name]
            out[name] = None if value is None else _DATETIME.to_representation(value)
        return out


class CandidateSerializer(serializers.ModelSerializer):
    """Read-only. The fields are declared for the schema; to_representation builds the dict directly, 8x faster
    than DRF's per-field machinery (a 1,000-row frontier took 150 ms of serialization)."""

    proxy = serializers.IntegerField(source="non_embedding_params", read_only=True)
    latency_s = serializers.FloatField(source="measurement.latency_median_s", read_only=True, allow_null=True,
                                       default=None, help_text="null until measured")
    memory_mb = serializers.FloatField(source="measurement.peak_memory_mb", read_only=True, allow_null=True,
                                       default=None, help_text="null until measured")
    predicted = serializers.JSONField(
        read_only=True, allow_null=True,
        help_text='measure "predicted": the cost model\'s {"latency": [value, low, high] (s), "memory": [...] (MB)} '
                  "when the policy decided, intervals of its stated coverage; never a measured value. null otherwise")

    class Meta:
        model = Candidate
        fields = ["id", "job", "archid", "config", "generation", "position", "origin", "parents", "n_layer",
                  "d_model", "d_inner", "n_head", "proxy", "total_params", "status", "feasible", "is_pareto",
                  "latency_s", "memory_mb", "measurement", "cache_hit", "revision", "predicted"]
        read_only_fields = fields

    def to_representation(self, c: Candidate) -> dict[str, Any]:
        m = c.measurement
        return {
            "id": c.id, "job": c.job_id, "archid": c.archid, "config": c.config, "generation": c.generation,
            "position": c.position, "origin": c.origin, "parents": c.parents, "n_layer": c.n_layer,
            "d_model": c.d_model, "d_inner": c.d_inner, "n_head": c.n_head, "proxy": c.non_embedding_params,
            "total_params": c.total_params, "status": c.status, "feasible": c.feasible, "is_pareto": c.is_pareto,
            "latency_s": m.latency_median_s if m else None, "memory_mb": m.peak_memory_mb if m else None,
            "measurement": c.measurement_id, "cache_hit": c.cache_hit, "revision": c.revision,
            "predicted": c.predicted,
        }


class FrontierSerializer(serializers.Serializer):
    """The response of a search's frontier: the objectives it is over, the job revision it was computed at, and
    the non-dominated candidates, best first objective first (all of them: not paged)."""

    objectives = serializers.ListField(child=serializers.ChoiceField(list(OBJECTIVES)))
    revision = serializers.IntegerField()
    results = CandidateSerializer(many=True)


class SearchJobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)
    device = serializers.CharField(source="device.name", read_only=True, default=None)
    counts = serializers.JSONField(read_only=True)

    class Meta:
        model = SearchJob
        fields = ["id", "name", "owner", "team", "team_name", "device", "status", "spec", "generation",
                  "hypervolumes", "dropped_infeasible", "hardware_seconds", "revision", "error", "counts",
                  "created_at", "started_at", "finished_at", "updated_at"]


class SearchCreateSerializer(RefuseUnknownFields, serializers.Serializer):
    """The body of POST /api/v1/searches/: name, team, and the spec's fields at the top level."""

    name = serializers.CharField(max_length=200)
    team = IdField(required=False, help_text="team id; default: your first team")
    preset = serializers.CharField(required=False, allow_null=True)
    space = serializers.JSONField(required=False, allow_null=True)
    objectives = serializers.JSONField(required=False)
    constraints = serializers.JSONField(required=False)
    device = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    profiling = serializers.JSONField(required=False)
    algorithm = serializers.CharField(required=False)
    params = serializers.JSONField(required=False)
    seed = serializers.IntegerField(required=False)
    budget = serializers.JSONField(required=False)
    # A CharField, not a ChoiceField: its message comes from normalize_spec with every other field's at once.
    measure = serializers.CharField(required=False, help_text='"all" (default): measure every candidate; "predicted": '
                                    "measure those the device's cost model cannot rule out, predict the rest")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The team, the spec and the device's limits, each field's message at once."""
        user = self.context["request"].user
        memberships = Membership.objects.filter(user=user)
        errors: dict[str, Any] = {}
        team = attrs.get("team")
        if team is None:
            first = memberships.order_by("team__name").first()
            if first is None:
                errors["team"] = "you are in no team: ask an admin to add you to one"
            else:
                team = first.team_id
        elif not memberships.filter(team_id=team).exists():
            errors["team"] = "you are not a member of this team"
        raw = {k: attrs[k] for k in SPEC_FIELDS if k in attrs}
        if raw.get("device") == "":
            raw["device"] = None
        try:
            spec = normalize_spec(raw)
        except SpecError as exc:
            raise serializers.ValidationError({**errors, **exc.errors}) from None
        device = Device.objects.filter(name=spec["device"]).first() if spec["device"] else None
        if spec["device"] and device is None:
            known = ", ".join(Device.objects.values_list("name", flat=True)) or "none yet"
            errors["device"] = (f"unknown device {spec['device']!r} (registered: {known}); "
                                "start its profiling worker first")
        beyond = profile_limit_errors(device, profile_settings(spec), largest_dims(space_of(spec)))
        errors.update({f"profiling.{k}": v for k, v in beyond.items()})
        if errors:
            raise serializers.ValidationError(errors)
        return {"name": attrs["name"], "team_id": team, "spec": spec}


class CloneSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)


class SpaceSummarySerializer(serializers.Serializer):
    """A search space's number of architectures, proxy range and canonical document."""

    size = serializers.IntegerField()
    proxy_min = serializers.IntegerField()
    proxy_max = serializers.IntegerField()
    space = serializers.DictField()


class PresetSerializer(SpaceSummarySerializer):
    name = serializers.CharField()


class SpacePreviewSerializer(serializers.Serializer):
    """{"preset": NAME} or {"space": DOCUMENT}: its size and proxy range."""

    preset = serializers.CharField(required=False)
    space = serializers.JSONField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("preset" in attrs) == ("space" in attrs):
            raise serializers.ValidationError({"space": "give either a preset or a space"})
        try:
            space = get_space(attrs.get("preset") or attrs["space"])
        except ConfigError as exc:
            key = "preset" if "preset" in attrs else "space"
            raise serializers.ValidationError({(k if k in ("preset", "space") else f"{key}.{k}"): v
                                               for k, v in exc.errors.items()}) from None
        return {"space": space}

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        space = value["space"]
        low, high = space.proxy_range()
        return {"size": space.size, "proxy_min": low, "proxy_max": high, "space": space.to_dict()}


# ---- cost models: POST /devices/{name}/predict/, GET /devices/{name}/predictor/ ------------------------------------

MAX_PREDICT_ARCHITECTURES = 1000

ARCHITECTURE_SCHEMA = {
    "type": "object",
    "description": "a GPT-2 decoder config, as /api/v1/architectures/preview/ takes it",
    "properties": {
        "arch_type": {"type": "string", "enum": ["gpt2"]},
        **{name: {"type": "integer", "minimum": 1, "maximum": limit} for name, limit in ARCH_LIMITS.items()},
        "dropatt": {"type": "number", "minimum": 0, "maximum": 1, "exclusiveMaximum": True},
    },
    "required": ["n_layer", "d_model", "d_inner", "n_head"],
    "additionalProperties": False,
}
_PROFILING_CHOICES = {"backend": BACKENDS, "mode": MODES, "dtype": DTYPES, "device": DEVICES}
PROFILING_SCHEMA = {
    "type": "object",
    "description": "profiling settings as in a search's spec (every field optional, defaults as there); the fields "
                   "backend, batch_size, seq_len, threads, mode, dtype and device choose the cost model",
    "properties": {
        f.name: ({"type": "string", "enum": list(_PROFILING_CHOICES[f.name])} if f.name in _PROFILING_CHOICES
                 else {"type": "integer", "minimum": 1} if isinstance(f.default, int)
                 else {"type": "number", "minimum": 0})
        for f in dataclass_fields(ProfileSettings)
    },
    "additionalProperties": False,
}


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_PREDICT_ARCHITECTURES,
                      "items": ARCHITECTURE_SCHEMA})
class _ArchitecturesField(serializers.JSONField):
    pass


@extend_schema_field(PROFILING_SCHEMA)
class _ProfilingField(serializers.JSONField):
    pass


class _PredictBody(serializers.Serializer):
    architectures = _ArchitecturesField(help_text=f"1 to {MAX_PREDICT_ARCHITECTURES} architecture configs")
    profiling = _ProfilingField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Every field's messages at once, flat: "profiling.seq_len", "architectures.3.n_head"."""
        try:
            super().to_internal_value(data)
            errors: dict[str, Any] = {}
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict) or not isinstance(data, Mapping):
                raise
            errors = dict(exc.detail)
        settings = None
        if "profiling" not in errors:
            try:
                settings = ProfileSettings.from_dict(data.get("profiling", {}))
            except ConfigError as exc:
                errors.update({"profiling" if k == "settings" else f"profiling.{k}": [v]
                               for k, v in exc.errors.items()})
        archs: list[Architecture] = []
        configs = data.get("architectures")
        if "architectures" in errors:
            pass
        elif not isinstance(configs, list):
            errors["architectures"] = ["must be a list of architecture configs"]
        elif not 1 <= len(configs) <= MAX_PREDICT_ARCHITECTURES:
            errors["architectures"] = [f"give 1 to {MAX_PREDICT_ARCHITECTURES} architectures, got {len(configs)}"]
        else:
            for i, config in enumerate(configs):
                try:
                    arch = Architecture.from_dict(config)
                    if settings is not None:
                        settings.check_arch(arch)
                    archs.append(arch)
                except ConfigError as exc:
                    for key, message in exc.errors.items():
                        field = {"config": "", "seq_len": ".max_sequence_length"}.get(key, f".{key}")
                        errors[f"architectures.{i}{field}"] = [message]
        if errors:
            raise serializers.ValidationError(errors)
        return {"settings": settings, "architectures": archs}


class PredictRequestSerializer(RefuseUnknownFields, _PredictBody):
    """The body of POST /api/v1/devices/{name}/predict/."""


class CostModelSerializer(serializers.ModelSerializer):
    """A stored cost model of one key: what it was fit on and its held-out error (read-only)."""

    device = serializers.CharField(source="device.name", read_only=True)
    latency_mape = serializers.FloatField(help_text="mean absolute percentage error of the held-out (10-fold) "
                                                    "latency predictions, as a fraction")
    memory_mape = serializers.FloatField()
    latency_spearman = serializers.FloatField(allow_null=True, help_text="rank correlation of held-out predictions "
                                                                         "with the measurements")
    memory_spearman = serializers.FloatField(allow_null=True)
    latency_coverage = serializers.FloatField(help_text="share of held-out measurements inside their interval")
    memory_coverage = serializers.FloatField()
    coverage = serializers.FloatField(help_text="the intervals' nominal coverage")
    later_measurements = serializers.IntegerField(
        help_text="measurements in the check on later measurements: each predicted by the model fit on what was "
                  "measured before it, as a search uses the model")
    latency_later_mape = serializers.FloatField(allow_null=True, help_text="MAPE of those predictions (null: none)")
    memory_later_mape = serializers.FloatField(allow_null=True)
    latency_later_coverage = serializers.FloatField(
        allow_null=True, help_text="share of those measurements inside the interval the model gave them before")
    memory_later_coverage = serializers.FloatField(allow_null=True)
    families = serializers.DictField(child=serializers.CharField(), help_text="model family of each target")

    class Meta:
        model = CostModelFit
        fields = ["device", *MEASUREMENT_KEY_FIELDS, "measurements", "fitted_on", "fitted_at", "version",
                  "latency_mape", "memory_mape", "latency_spearman", "memory_spearman", "latency_coverage",
                  "memory_coverage", "coverage", "later_measurements", "latency_later_mape", "memory_later_mape",
                  "latency_later_coverage", "memory_later_coverage", "families"]
        read_only_fields = fields


class PredictorKeySerializer(serializers.Serializer):
    """One measurement key of a device: how many finished measurements it has, and its stored model (null until it
    has ``need`` of them and a measurement landed since)."""

    backend = serializers.CharField()
    batch_size = serializers.IntegerField()
    seq_len = serializers.IntegerField()
    threads = serializers.IntegerField()
    mode = serializers.CharField()
    dtype = serializers.CharField()
    device_type = serializers.CharField()
    measurements = serializers.IntegerField(help_text="finished measurements of this key now")
    need = serializers.IntegerField(help_text="finished measurements a model needs")
    model = CostModelSerializer(allow_null=True)


class _Interval(serializers.ListField):
    child = serializers.FloatField(allow_null=True)


class PredictionSerializer(serializers.Serializer):
    """One architecture's predictions. Values outside a float's range (an architecture far beyond the measured ones)
    are null."""

    archid = serializers.CharField()
    latency_s = serializers.FloatField(allow_null=True)
    latency_interval = _Interval(min_length=2, max_length=2, help_text="[low, high] at the model's coverage")
    memory_mb = serializers.FloatField(allow_null=True)
    memory_interval = _Interval(min_length=2, max_length=2)
    measurements = serializers.IntegerField(help_text="finished measurements behind the model")
    latency_mape = serializers.FloatField()
    memory_mape = serializers.FloatField()


class PredictResponseSerializer(serializers.Serializer):
    model = CostModelSerializer()
    results = PredictionSerializer(many=True)


class TooFewMeasurementsSerializer(serializers.Serializer):
    detail = serializers.CharField()
    measurements = serializers.IntegerField()
    need = serializers.IntegerField()
