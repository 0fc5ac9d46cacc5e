"""Test sets, their images, and the annotators' votes.

A vote is one row per (image, annotator), enforced by the database. Every change to a
vote (cast, change, undo, import) is appended to ``VoteEvent`` so nothing is silently
overwritten.
"""
from django.conf import settings
from django.db import models

from ferml.labels import BIN3

# An annotator's vote is one of ferml's bin3 labels: negative, neutral, positive.
Label = models.TextChoices("Label", [(label.upper(), label) for label in BIN3])

LABELS = [choice.value for choice in Label]


class TestSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

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


class Vote(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="votes")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="votes")
    label = models.CharField(max_length=10, choices=Label.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["image", "annotator"]
        constraints = [
            models.UniqueConstraint(fields=["image", "annotator"], name="one_vote_per_image_and_annotator"),
        ]
        # Undo looks up an annotator's most recent vote.
        indexes = [models.Index(fields=["annotator", "updated_at"], name="vote_annotator_updated")]

    def __str__(self):
        return f"{self.annotator} -> {self.image}: {self.label}"


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
