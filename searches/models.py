"""Devices and the shared measurement cache; search jobs and their candidates."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from lts_web.work import QueuedWork

DEVICE_NAME_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,62}$", "lower-case letters, digits, '-', '_' and '.', starting with a letter or digit"
)


def profile_queue(device_name: str) -> str:
    """The Celery queue that only this device's profiling worker consumes."""
    return f"profile.{device_name}"


class Device(models.Model):
    """A target machine with a profiling worker. Registered and kept alive by that worker (workers/devices.py)."""

    name = models.CharField(max_length=63, unique=True, validators=[DEVICE_NAME_VALIDATOR])
    hostname = models.CharField(max_length=255, blank=True)
    hardware = models.JSONField(default=dict, blank=True)  # CPU model, cores, RAM, GPU: see core describe_device()
    backends = models.JSONField(default=list, blank=True)  # e.g. ["torch", "onnxruntime"]
    worker_name = models.CharField(max_length=255, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return profile_queue(self.name)

    @property
    def is_online(self) -> bool:
        if self.last_heartbeat is None:
            return False
        return timezone.now() - self.last_heartbeat < timedelta(seconds=settings.LTS_DEVICE_OFFLINE_AFTER_S)


# The settings that define a measurement besides the architecture and the device (ProfileSettings.cache_key(), with
# its "device" named device_type here): the measurement cache's key and a cost model's.
MEASUREMENT_KEY_FIELDS = ("backend", "batch_size", "seq_len", "threads", "mode", "dtype", "device_type")


class MeasurementKey(models.Model):
    """The columns of MEASUREMENT_KEY_FIELDS, shared by measurements and the cost models fit on them."""

    backend = models.CharField(max_length=20)
    batch_size = models.PositiveIntegerField()
    seq_len = models.PositiveIntegerField()
    threads = models.PositiveIntegerField()
    mode = models.CharField(max_length=10)
    dtype = models.CharField(max_length=10)
    device_type = models.CharField(max_length=10, default="cpu")  # "cpu" or "cuda" on that machine

    class Meta:
        abstract = True

    @property
    def key(self) -> dict:
        return {name: getattr(self, name) for name in MEASUREMENT_KEY_FIELDS}


class Measurement(MeasurementKey, QueuedWork):
    """Latency and peak memory of one architecture on one device with one set of settings.

    Shared by every job and user: the unique key makes a second request for it a cache hit, and a retried
    task a no-op (STYLE.md habit 1).
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    archid = models.CharField(max_length=64)
    config = models.JSONField()  # the canonical architecture (Architecture.to_dict())
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="measurements")
    options = models.JSONField(default=dict, blank=True)  # the remaining profiler settings (tolerance, repeats)

    WAITING = Status.PENDING

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    latency_median_s = models.FloatField(null=True, blank=True)
    latency_p10_s = models.FloatField(null=True, blank=True)
    latency_p90_s = models.FloatField(null=True, blank=True)
    latency_mean_s = models.FloatField(null=True, blank=True)
    latency_std_s = models.FloatField(null=True, blank=True)
    latency_n = models.PositiveIntegerField(null=True, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    param_bytes = models.BigIntegerField(null=True, blank=True)
    onnx_file_bytes = models.BigIntegerField(null=True, blank=True)
    wall_s = models.FloatField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)  # device description, library versions, all settings

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["archid", "device", "backend", "batch_size", "seq_len", "threads", "mode", "dtype", "device_type"],
                name="unique_measurement_key",
            )
        ]
        indexes = [
            # the reaper: running rows with a stale heartbeat, pending rows that were never picked up
            models.Index(fields=["status", "heartbeat_at"], name="measurement_status_hb"),
            models.Index(fields=["device", "status"], name="measurement_device_status"),
        ]

    def __str__(self) -> str:
        return f"{self.archid} on {self.device_id} ({self.backend}, {self.mode}, b{self.batch_size}x{self.seq_len})"


class SearchJob(models.Model):
    """One LTS search a team submitted: its validated spec, where it stands, and its history of hypervolumes."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        WAITING = "waiting-for-device", "waiting for device"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING)
    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="searches")
    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="searches")
    name = models.CharField(max_length=200)
    spec = models.JSONField()  # normalized by searches.specs.normalize_spec: space, objectives, budget, ...
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.PROTECT, related_name="searches")

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    generation = models.PositiveIntegerField(default=0)  # generations proposed so far
    rng_state = models.JSONField(null=True, blank=True)  # the RNG stream after the last proposal
    hypervolumes = models.JSONField(default=list, blank=True)  # [{"generation", "hypervolume", "frontier_size"}]
    dropped_infeasible = models.PositiveIntegerField(default=0)  # proposals outside the proxy constraint
    hardware_seconds = models.FloatField(default=0.0)  # device time spent on this job's new measurements
    # measure "predicted": the highest id of the key's finished measurements when the job started. Its cost model is
    # fit on those and on its own candidates' measurements only, so that other jobs' later measurements cannot
    # change its decisions (deterministic given the seed and the cache at start). None: not started, or "all".
    cache_cutoff = models.BigIntegerField(null=True, blank=True)
    revision = models.BigIntegerField(default=0)  # bumped with every change to the job or its candidates
    # {"candidates", "measured", "measuring", "failed", "pareto"}: refreshed by every step that changes them, so that
    # the dashboard and the live poll need no COUNT over 100,000 candidates (60-110 ms each on PostgreSQL here).
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    advanced_at = models.DateTimeField(null=True, blank=True)  # last orchestration step: the reaper's clock
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="search_team_created"),
            models.Index(fields=["status", "advanced_at"], name="search_status_advanced"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def objectives(self) -> list[str]:
        return list(self.spec["objectives"])

    @property
    def needs_hardware(self) -> bool:
        return bool({"latency", "memory"} & set(self.spec["objectives"]))


class Candidate(models.Model):
    """An architecture a job proposed. Its latency/memory live in the shared Measurement it references."""

    class Status(models.TextChoices):
        MEASURING = "measuring"
        MEASURED = "measured"
        FAILED = "failed"
        CANCELLED = "cancelled"
        PREDICTED = "predicted"  # not measured: the cost model predicted it cannot improve the frontier

    job = models.ForeignKey(SearchJob, on_delete=models.CASCADE, related_name="candidates")
    archid = models.CharField(max_length=64)
    config = models.JSONField()
    generation = models.PositiveIntegerField()
    position = models.PositiveIntegerField()  # order within its generation: the history order the core needs
    origin = models.CharField(max_length=10)  # init, mutation, crossover, random
    parents = models.JSONField(default=list, blank=True)  # archids
    n_layer = models.PositiveIntegerField()
    d_model = models.PositiveIntegerField()
    d_inner = models.PositiveIntegerField()
    n_head = models.PositiveIntegerField()
    non_embedding_params = models.BigIntegerField()
    total_params = models.BigIntegerField()
    measurement = models.ForeignKey(Measurement, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="candidates")
    cache_hit = models.BooleanField(default=False)  # its measurement existed before this job asked
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.MEASURING)
    feasible = models.BooleanField(null=True)  # None until measured; latency/memory constraints
    is_pareto = models.BooleanField(default=False)
    # The cost model's prediction when the policy decided (measure "predicted"): {"latency": [value, low, high],
    # "memory": [...]} in s and MB, intervals of the model's coverage; None when nothing was predicted. Never an
    # objective value: only a measurement is (candidate_objectives).
    predicted = models.JSONField(null=True, blank=True)
    revision = models.BigIntegerField(default=0)  # the job revision of its last change: the `after` cursor
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "archid"], name="unique_candidate_per_job")]
        indexes = [
            # id included: a page at offset 50,000 reads keys from the index alone (PostgreSQL, after vacuum;
            # 28 -> 13 ms); SQLite ignores INCLUDE.
            models.Index(fields=["job", "generation", "position"], include=["id"], name="candidate_job_order"),
            models.Index(fields=["job", "revision"], name="candidate_job_revision"),
            models.Index(fields=["job", "status"], name="candidate_job_status"),
            models.Index(fields=["job", "is_pareto"], name="candidate_job_pareto"),
            models.Index(fields=["job", "non_embedding_params"], name="candidate_job_proxy"),
        ]
        ordering = ["generation", "position"]

    def __str__(self) -> str:
        return f"{self.archid} in job {self.job_id}"

    @property
    def generation_number(self) -> int:
        """The generation as the pages number it, 1 to N (as the search's header and hypervolume chart); the field,
        as the API and the exports give it, counts from 0."""
        return self.generation + 1

    @property
    def position_number(self) -> int:
        """The position within its generation as the candidate page numbers it, from 1 beside its generation's
        number; the field, as the API and the exports give it, counts from 0."""
        return self.position + 1


class CostModelFit(MeasurementKey):
    """The latest cost model of one measurement key (device + MEASUREMENT_KEY_FIELDS): latency and memory predicted
    from the key's finished measurements (searches.core.cost_model). Written only by
    searches.services.predictor.do_refit_cost_model; its error figures are columns so that lists need no JSON."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="cost_models")

    model = models.JSONField()  # CostModel.to_dict(): coefficients, intervals, the held-out predictions
    measurements = models.PositiveIntegerField()  # distinct architectures behind the fit
    fitted_on = models.CharField(max_length=40)  # cost_model.fitted_on_digest of their archids
    fitted_at = models.DateTimeField()
    version = models.PositiveIntegerField(default=1)  # 1 for the first fit of the key, +1 at each refit
    latency_mape = models.FloatField()
    memory_mape = models.FloatField()
    latency_spearman = models.FloatField(null=True)  # None when undefined (constant values)
    memory_spearman = models.FloatField(null=True)
    latency_coverage = models.FloatField()  # share of held-out measurements inside their interval
    memory_coverage = models.FloatField()
    coverage = models.FloatField()  # the intervals' nominal coverage (0.9)
    # The check on later measurements (cost_model: each block predicted by the model fit on what was measured before
    # it, judged by that model's interval): how many, their MAPE, the share inside. None before there are any.
    later_measurements = models.PositiveIntegerField(default=0)
    latency_later_mape = models.FloatField(null=True)
    memory_later_mape = models.FloatField(null=True)
    latency_later_coverage = models.FloatField(null=True)
    memory_later_coverage = models.FloatField(null=True)
    families = models.JSONField(default=dict)  # {"latency": "nnls", "memory": "loglinear"}

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", *MEASUREMENT_KEY_FIELDS],
                                               name="unique_cost_model_key")]
        ordering = ["device", *MEASUREMENT_KEY_FIELDS]

    def __str__(self) -> str:
        return (f"cost model v{self.version} of {self.device_id} ({self.backend}, {self.mode}, "
                f"b{self.batch_size}x{self.seq_len})")
