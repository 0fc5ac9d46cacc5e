"""Test sets, their images, and the annotators' votes.

A vote is one row per (image, annotator), enforced by the database. Every change to a
vote (cast, change, undo, import) is appended to ``VoteEvent`` so nothing is silently
overwritten.
"""
import json

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property

from ferml.labels import BIN3

# An annotator's vote is one of ferml's bin3 labels: negative, neutral, positive.
Label = models.TextChoices("Label", [(label.upper(), label) for label in BIN3])

LABELS = [choice.value for choice in Label]


class TestSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Raised whenever an image is added to or removed from the test set, in the same
    # transaction: each server process keeps every annotator's order of the images and
    # checks it against this one number instead of reading the images again.
    images_version = models.PositiveBigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


def image_upload_path(instance, filename):
    return f"testsets/{instance.testset.name}/{instance.sha256[:2]}/{instance.sha256}{_suffix(filename)}"


def _suffix(filename):
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


class Image(models.Model):
    testset = models.ForeignKey(TestSet, on_delete=models.CASCADE, related_name="images")
    key = models.CharField(max_length=500, help_text="Relative path inside the imported folder or zip.")
    file = models.FileField(upload_to=image_upload_path, max_length=300)
    sha256 = models.CharField(max_length=64, db_index=True)
    original_name = models.CharField(max_length=500, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    # Face box in the original image when the image was cropped by face detection.
    face_x = models.PositiveIntegerField(null=True, blank=True)
    face_y = models.PositiveIntegerField(null=True, blank=True)
    face_w = models.PositiveIntegerField(null=True, blank=True)
    face_h = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["testset", "key"]
        constraints = [
            models.UniqueConstraint(fields=["testset", "key"], name="unique_image_key_per_testset"),
            models.UniqueConstraint(fields=["testset", "sha256"], name="unique_image_content_per_testset"),
        ]
        # A test set's image ids without reading the table: building an annotator's order of
        # them on the labelling page, and the staff pages' image counts.
        indexes = [models.Index(fields=["testset", "id"], name="image_testset_id")]

    def __str__(self):
        return f"{self.testset.name}:{self.key}"


class RepeatedFile(models.Model):
    """A file skipped at import because its content repeats an image of the test set.

    Kept by name so that votes naming it are reported and left out by ``import_votes``
    instead of stopping the whole file; its votes are never merged into ``image``'s.
    """

    testset = models.ForeignKey(TestSet, on_delete=models.CASCADE, related_name="repeated_files")
    key = models.CharField(max_length=500, help_text="Relative path of the skipped file.")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="repeats",
                              help_text="The stored image with the same content.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["testset", "key"]
        constraints = [
            models.UniqueConstraint(fields=["testset", "key"],
                                    name="unique_repeated_file_per_testset"),
        ]

    def __str__(self):
        return f"{self.testset.name}:{self.key} (same content as {self.image.key})"


class VoteQuerySet(models.QuerySet):
    def bulk_create(self, objs, *args, **kwargs):
        """As Django's, with each vote's test set filled in from its image (``Vote.save`` does
        the same for one vote)."""
        objs = list(objs)
        for vote in objs:
            vote.fill_testset()
        return super().bulk_create(objs, *args, **kwargs)


class Vote(models.Model):
    # The unique (image, annotator) index and the indexes below serve every lookup by image,
    # annotator or test set, so the foreign keys need no index of their own (fewer indexes
    # to update on each vote).
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="votes", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes",
                                  db_index=False)
    # Always the image's test set (filled in on save): the staff pages count a test set's
    # votes, and the labelling page an annotator's, without a join over every image.
    testset = models.ForeignKey(TestSet, on_delete=models.CASCADE, related_name="votes", db_index=False,
                                editable=False)
    label = models.CharField(max_length=10, choices=Label.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)

    objects = VoteQuerySet.as_manager()

    class Meta:
        ordering = ["image", "annotator"]
        constraints = [
            models.UniqueConstraint(fields=["image", "annotator"], name="one_vote_per_image_and_annotator"),
        ]
        indexes = [
            # Undo looks up an annotator's most recent vote.
            models.Index(fields=["annotator", "updated_at"], name="vote_annotator_updated"),
            # An annotator's progress in a test set; the dashboard's figures per annotator.
            models.Index(fields=["testset", "annotator"], name="vote_testset_annotator"),
        ]

    def __str__(self):
        return f"{self.annotator} -> {self.image}: {self.label}"

    def fill_testset(self):
        if self.testset_id is None and self.image_id is not None:
            self.testset_id = self.image.testset_id

    def save(self, *args, **kwargs):
        self.fill_testset()
        super().save(*args, **kwargs)


class VoteEvent(models.Model):
    """Append-only history of every vote write, so a change or an undo is never silent."""

    class Action(models.TextChoices):
        CAST = "cast"
        CHANGE = "change"
        UNDO = "undo"
        IMPORT = "import"
        # A vote removed by staff (admin), as opposed to the annotator's own undo.
        DELETE = "delete"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="vote_events")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vote_events")
    action = models.CharField(max_length=10, choices=Action.choices)
    label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    previous_label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]


class Job(models.Model):
    """Work done in the background and kept: a large vote upload, a benchmark report.

    The page that started a job shows its progress while it runs and its result (or the
    error, a sentence for the user) afterwards; ``annotator.jobs`` runs it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    kind = models.CharField(max_length=40)
    # What the job computes, so that a page finds it again (a report's choices, hashed).
    key = models.CharField(max_length=64, blank=True)
    testset = models.ForeignKey(TestSet, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs")
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

    class Meta:
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
