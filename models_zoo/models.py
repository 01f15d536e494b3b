"""Datasets a team registers, training runs, and the model zoo."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from lts_web.work import QueuedWork


class Dataset(models.Model):
    """Training text: an uploaded file, a folder under LTS_DATA_ROOT, or a Hugging Face dataset.

    ``path`` is always relative to LTS_DATA_ROOT (uploads live in ``uploads/<id>/``) and is confined to it by
    models_zoo.core.confined_path whenever it is read.
    """

    class Kind(models.TextChoices):
        UPLOAD = "upload"
        FOLDER = "folder"
        HUB = "hub"

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="datasets")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    path = models.CharField(max_length=1000, blank=True)  # upload/folder: relative to LTS_DATA_ROOT
    hub_name = models.CharField(max_length=300, blank=True)
    hub_config = models.CharField(max_length=200, blank=True)
    hub_split = models.CharField(max_length=100, blank=True, default="train")
    hub_text_field = models.CharField(max_length=100, blank=True, default="text")
    hub_validation_split = models.CharField(max_length=100, blank=True)
    validation_fraction = models.FloatField(default=0.1)  # used when the source has no validation split
    size_bytes = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_dataset_name_per_team")]
        indexes = [models.Index(fields=["team", "-created_at"], name="dataset_team_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def describe(self) -> str:
        if self.kind == self.Kind.HUB:
            config = f"/{self.hub_config}" if self.hub_config else ""
            return f"hub:{self.hub_name}{config} split={self.hub_split} field={self.hub_text_field}"
        return f"{self.kind}:{self.path}"


class TrainingRun(QueuedWork):
    """One training of an architecture on a dataset with a tokenizer and a budget (workers/training.py runs it)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    WAITING = Status.QUEUED

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="training_runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_runs")
    name = models.CharField(max_length=200)
    architecture = models.JSONField()  # the canonical config as searched (Architecture.to_dict())
    archid = models.CharField(max_length=64)  # of ``architecture``
    trained_archid = models.CharField(max_length=64, blank=True)  # vocab_size replaced by the tokenizer's
    candidate = models.ForeignKey("searches.Candidate", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="training_runs")
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs")
    dataset_description = models.CharField(max_length=1000, blank=True)  # kept when the dataset is deleted
    tokenizer = models.CharField(max_length=1000)  # gpt2-files:DIR | bpe:VOCAB | dir:DIR (DIR under LTS_DATA_ROOT)
    config = models.JSONField()  # TrainConfig.to_dict() without "device" unless the user chose one

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)  # read by the worker's heartbeat thread
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    tokens_seen = models.BigIntegerField(default=0)
    train_loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    val_ppl = models.FloatField(null=True, blank=True)
    best_val_loss = models.FloatField(null=True, blank=True)
    lr = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    elapsed_s = models.FloatField(default=0.0)
    history = models.JSONField(default=list, blank=True)  # progress points, thinned to HISTORY_POINTS (models_zoo.core)
    resumed_from = models.PositiveIntegerField(null=True, blank=True)  # checkpoint step of the last resume

    error = models.TextField(blank=True)
    # What a running run does before its first step is reported (tokenizing, building the model): set by the worker.
    phase = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="run_team_created"),
            # the reaper: running rows with a stale heartbeat, queued rows whose message was lost
            models.Index(fields=["status", "heartbeat_at"], name="run_status_hb"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def run_dir(self) -> Path:
        return Path(settings.LTS_ARTIFACT_ROOT) / "runs" / str(self.pk)

    @property
    def stop_reason(self) -> str | None:
        """Why a finished run stopped: "max_steps", "max_tokens" or "max_minutes" (the budget that ended it),
        "cancelled" or "failed" (see ``error``); None while queued or running."""
        if self.status == self.Status.CANCELLED:
            return "cancelled"
        if self.status == self.Status.FAILED:
            return "failed"
        if self.status != self.Status.COMPLETED:
            return None
        if self.total_steps is None or self.step < self.total_steps:
            return "max_minutes"
        return "max_steps" if self.config.get("max_steps") == self.total_steps else "max_tokens"

    @property
    def stop_text(self) -> str:
        """The stop reason as the run's page says it."""
        reason, config = self.stop_reason, self.config
        if reason == "max_steps":
            return f"reached its step budget ({config['max_steps']:,} steps)"
        if reason == "max_tokens":
            return f"reached its token budget ({config['max_tokens']:,} tokens)"
        if reason == "max_minutes":
            return f"reached its time budget ({config.get('max_minutes') or 0:g} minutes)"
        if reason == "cancelled":
            return "cancelled by a user (the last checkpoint is kept)"
        if reason == "failed":
            return f"failed: {self.error}" if self.error else "failed"
        return ""

    @property
    def progress_percent(self) -> int | None:
        if self.status == self.Status.COMPLETED:
            return 100
        return min(100, round(100 * self.step / self.total_steps)) if self.total_steps else None


class ZooModel(models.Model):
    """A Hugging Face GPT-2 checkpoint folder under LTS_ARTIFACT_ROOT/zoo/<id>/, trained here or imported."""

    class Source(models.TextChoices):
        TRAINED = "trained"
        IMPORTED = "imported"

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="zoo_models")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="zoo_models")
    name = models.CharField(max_length=200)
    archid = models.CharField(max_length=64)  # of the model as it is (its vocabulary)
    source_archid = models.CharField(max_length=64, blank=True)  # as searched, when it differs
    config = models.JSONField()  # Architecture.to_dict()
    non_embedding_params = models.BigIntegerField()  # the LTS proxy
    total_params = models.BigIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices)
    origin = models.CharField(max_length=1000, blank=True)  # imported from: a path or a hub id
    training_run = models.OneToOneField(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="zoo_model")  # one export per run: a replayed finish is a no-op
    path = models.CharField(max_length=300, blank=True)  # relative to LTS_ARTIFACT_ROOT: zoo/<id>
    val_loss = models.FloatField(null=True, blank=True)
    val_ppl = models.FloatField(null=True, blank=True)
    data_description = models.CharField(max_length=1000, blank=True)
    tokenizer_description = models.CharField(max_length=1000, blank=True)
    budget_description = models.CharField(max_length=1000, blank=True)
    tokens_seen = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="zoo_team_created"),
            models.Index(fields=["archid"], name="zoo_archid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.archid})"

    @property
    def folder(self) -> Path:
        return Path(settings.LTS_ARTIFACT_ROOT) / self.path

    @property
    def archids(self) -> list[str]:
        """The ids its measurements may be stored under: as it is, and as searched."""
        return [a for a in (self.archid, self.source_archid) if a]


class ZooImport(QueuedWork):
    """A Hugging Face hub checkpoint being imported into the zoo by a worker (queue "train"): a download takes
    minutes, so the request only queues it and the zoo page shows where it stands. A local folder is imported in
    the request itself (models_zoo.services.do_import_model)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.COMPLETED, Status.FAILED)
    WAITING = Status.QUEUED

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="zoo_imports")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="zoo_imports")
    source = models.CharField(max_length=1000)  # hub:org/name[/subfolder]
    revision = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=200, blank=True)
    profile_device = models.ForeignKey("searches.Device", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    model = models.OneToOneField(ZooModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="zoo_import_team_created"),
            # the reaper: running rows with a stale heartbeat, queued rows whose message was lost
            models.Index(fields=["status", "heartbeat_at"], name="zoo_import_status_hb"),
        ]

    def __str__(self) -> str:
        return f"import of {self.source} (#{self.pk})"
