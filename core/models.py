"""The background job kept in the database, which every app's long work runs as."""
import json

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property


class Job(models.Model):
    """Work done in the background and kept: a large upload of votes or images, a report.

    The page that started a job shows its progress while it runs and its result (or the
    error, a sentence for the user) afterwards; ``core.jobs`` runs it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=40)
    # What the job computes, so that a page finds it again (a report's choices, hashed).
    key = models.CharField(max_length=64, blank=True)
    testset = models.ForeignKey("annotator.TestSet", on_delete=models.CASCADE, null=True, blank=True, related_name="jobs")
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=200, blank=True)
    done = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(null=True, blank=True)
    # What the job returned, as JSON text (text, not a JSON column: that keeps the order of keys).
    result_json = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Runs so far (a job whose worker ended is queued again, core.jobs.recover), and
    # the queue's task of the latest run.
    attempts = models.PositiveSmallIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "annotator_job"  # the table it had before it moved here
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "testset", "key", "created_at"], name="job_lookup")]

    def __str__(self):
        return f"{self.kind} #{self.pk} ({self.status})"

    @cached_property
    def result(self):
        return json.loads(self.result_json) if self.result_json else None

    def refresh_from_db(self, *args, **kwargs):
        self.__dict__.pop("result", None)
        super().refresh_from_db(*args, **kwargs)

    @property
    def active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int | None:
        return round(100 * self.done / self.total) if self.total else None

    @property
    def seconds(self) -> float | None:
        """How long it ran, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
