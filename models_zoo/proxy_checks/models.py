"""Proxy checks: K architectures trained through the normal training path, and how well the LTS proxy
ranked them by validation perplexity."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ProxyCheck(models.Model):
    """One check: what was drawn from which space, the shared training settings, and the result computed from its
    finished runs (models_zoo.proxy_checks.services.do_update_proxy_check, on a worker as each run finishes, keeps
    ``status`` and ``result`` in step with them)."""

    class Status(models.TextChoices):
        RUNNING = "running"  # some run is queued or running
        COMPLETED = "completed"  # every run finished, at least 3 models trained at the largest budget
        FAILED = "failed"  # every run finished, too few trained for a correlation
        CANCELLED = "cancelled"

    team = models.ForeignKey("lts_web.Team", on_delete=models.CASCADE, related_name="proxy_checks")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proxy_checks")
    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=50, blank=True)
    space = models.JSONField()  # the canonical space document (SearchSpace.to_dict()) the pool came from
    # sha1 of the canonical space: the search page finds the checks of its space with one indexed lookup.
    space_key = models.CharField(max_length=40)
    search = models.ForeignKey("searches.SearchJob", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="proxy_checks")  # drawn from this search's candidates
    dataset = models.ForeignKey("models_zoo.Dataset", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="proxy_checks")
    dataset_description = models.CharField(max_length=1000, blank=True)  # kept when the dataset is deleted
    tokenizer = models.CharField(max_length=1000)
    sample_size = models.PositiveIntegerField()  # K
    seed = models.IntegerField(default=1)
    budgets = models.JSONField()  # tokens per model, ascending: [N] or [N, 2N]
    config = models.JSONField()  # the TrainConfig settings every run shares (its budget is set per run)
    sample = models.JSONField(default=list)  # the drawn architectures in proxy order: archid, config, proxy, ...

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    cancel_requested = models.BooleanField(default=False)
    result = models.JSONField(null=True, blank=True)  # core.analyze() + the sentence; None before 1 run finishes
    # What ``result`` was computed from (each run's id, status and perplexity): an update that finds the same state
    # writes nothing and costs no bootstrap.
    state_key = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"], name="proxycheck_team_created"),
            models.Index(fields=["space_key"], name="proxycheck_space"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def budgets_text(self) -> str:
        return " and ".join(f"{tokens:,}" for tokens in self.budgets)

    @property
    def is_finished(self) -> bool:
        return self.status != self.Status.RUNNING


class ProxyCheckRun(models.Model):
    """One training run of a check: an architecture of the sample at one budget."""

    proxy_check = models.ForeignKey(ProxyCheck, on_delete=models.CASCADE, related_name="members")
    run = models.OneToOneField("models_zoo.TrainingRun", on_delete=models.CASCADE, related_name="proxy_check_member")
    archid = models.CharField(max_length=64)  # as drawn (the run's architecture)
    budget = models.BigIntegerField()  # tokens

    class Meta:
        ordering = ["budget", "pk"]
        constraints = [models.UniqueConstraint(fields=["proxy_check", "archid", "budget"],
                                               name="unique_proxy_check_member")]

    def __str__(self) -> str:
        return f"{self.archid} at {self.budget} tokens in check {self.proxy_check_id}"
