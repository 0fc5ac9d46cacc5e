"""Test sets, their images, and the annotators' votes.

A vote is one row per (image, annotator), enforced by the database. Every change to a
vote (cast, change, undo, import) is appended to ``VoteEvent`` so nothing is silently
overwritten.
"""
from django.conf import settings
from django.db import models

from ferml.labels import BIN3, CUSTOM_SCHEME, MAX_LABEL_LENGTH, SCHEMES, scheme_labels

from .overlap import DECIDED, UNANIMOUS, OverlapRule

# The default scheme's labels (bin3: negative, neutral, positive); a test set's own are
# ``TestSet.labels``.
LABELS = list(BIN3)


class TestSet(models.Model):
    class Stop(models.TextChoices):
        UNANIMOUS = UNANIMOUS, "unanimous: stop at the minimum when every vote agrees"
        DECIDED = DECIDED, "decided: stop when no vote up to the maximum could change the majority"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Raised whenever an image is added to or removed from the test set, or made a control
    # image or a regular one again, in the same transaction: each server process keeps
    # every annotator's order of the images and checks it against this one number instead
    # of reading the images again.
    images_version = models.PositiveBigIntegerField(default=0, editable=False)
    # What the annotators vote in, fixed when the test set is created (ferml.labels).
    label_scheme = models.CharField(
        max_length=20, default="bin3",
        choices=[(name, name) for name in SCHEMES] + [(CUSTOM_SCHEME, "custom list")])
    custom_labels = models.JSONField(default=list, blank=True)
    # Answers beside the labels ("unsure", "not-a-face"): stored as votes, in no majority.
    extra_answers = models.JSONField(default=list, blank=True)
    # Votes per image from a pool of annotators; None: every annotator labels every image.
    votes_per_image = models.PositiveSmallIntegerField(null=True, blank=True)
    # Adaptive overlap: with a maximum above votes_per_image (then the minimum), an image
    # stops at the minimum by the stop rule, otherwise it gets votes up to the maximum.
    max_votes_per_image = models.PositiveSmallIntegerField(null=True, blank=True)
    adaptive_stop = models.CharField(max_length=10, choices=Stop.choices, default=Stop.UNANIMOUS)
    # One served image in this many is a control image (0: none are served).
    control_rate = models.PositiveSmallIntegerField(default=20)
    # After a vote on a control image the page names the expected answer (a training phase).
    control_feedback = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def labels(self) -> list[str]:
        """The ordered labels of the test set's scheme."""
        return scheme_labels(self.label_scheme, self.custom_labels)

    @property
    def answers(self) -> list[str]:
        """Every answer a vote may hold: the labels, then the extra answers."""
        return [*self.labels, *self.extra_answers]

    @property
    def scheme_name(self) -> str:
        return "custom" if self.label_scheme == CUSTOM_SCHEME else self.label_scheme

    @property
    def pooled(self) -> bool:
        """Votes per image from a pool (N set), rather than every annotator on every image."""
        return self.votes_per_image is not None

    @property
    def overlap(self) -> OverlapRule | None:
        if self.votes_per_image is None:
            return None
        return OverlapRule(self.votes_per_image, max(self.max_votes_per_image or 0, self.votes_per_image),
                           self.adaptive_stop, len(self.labels))


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
    # A control image has a known answer: served to each annotator among the others, it
    # measures them and is left out of every statistic of the study. Empty: a regular image.
    control_label = models.CharField(max_length=MAX_LABEL_LENGTH, blank=True, default="")
    # In a pooled test set, kept with every vote written (annotator.overlap): the votes on
    # the image, and whether it needs no more of them (the queue serves the others).
    n_votes = models.PositiveIntegerField(default=0, editable=False)
    n_needed = models.PositiveIntegerField(default=0, editable=False)  # votes it surely still needs
    complete = models.BooleanField(default=False, editable=False)  # n_needed == 0 (pooled test sets)

    class Meta:
        ordering = ["testset", "key"]
        constraints = [
            models.UniqueConstraint(fields=["testset", "key"], name="unique_image_key_per_testset"),
            models.UniqueConstraint(fields=["testset", "sha256"], name="unique_image_content_per_testset"),
        ]
        indexes = [
            # A test set's image ids without reading the table: building an annotator's order
            # of them on the labelling page, and the staff pages' image counts.
            models.Index(fields=["testset", "id"], name="image_testset_id"),
            # The pool's queue: the open images of a test set, fewest votes first.
            models.Index(fields=["testset", "complete", "n_votes", "id"], name="image_queue"),
        ]

    @property
    def is_control(self) -> bool:
        return bool(self.control_label)

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
    def counted(self, testset: "TestSet") -> "VoteQuerySet":
        """The votes of ``testset`` that its statistics count: none on a control image, none
        by an annotator staff excluded. Votes for an extra answer are among them (the report
        counts them), though no majority counts them."""
        controls = Image.objects.filter(testset=testset).exclude(control_label="").values("pk")
        excluded = Exclusion.objects.filter(testset=testset, lifted_at__isnull=True).values("annotator_id")
        return self.filter(testset=testset).exclude(image_id__in=controls).exclude(annotator_id__in=excluded)

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
    # One of the test set's answers (its labels or extra answers; annotator.voting checks).
    label = models.CharField(max_length=MAX_LABEL_LENGTH)
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
    label = models.CharField(max_length=MAX_LABEL_LENGTH, blank=True)
    previous_label = models.CharField(max_length=MAX_LABEL_LENGTH, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]


class Lease(models.Model):
    """An image served to an annotator of a pooled test set, held for them a short while so
    that annotators labelling at once do not all vote on the image that needs one vote.

    A vote ends the lease; an expired one counts for nothing. ``skipped``: the annotator
    passed the image over, so it is served to them again only when nothing else is left.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="leases", db_index=False)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    skipped = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "annotator"], name="one_lease_per_image_and_annotator"),
        ]


class Exclusion(models.Model):
    """An annotator left out of a test set's statistics by staff, with the reason; lifting
    it keeps the record (``lifted_at``), so the history of who was excluded stays."""

    testset = models.ForeignKey(TestSet, on_delete=models.CASCADE, related_name="exclusions")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["testset", "-created_at"]
        constraints = [
            # At most one exclusion in force per test set and annotator.
            models.UniqueConstraint(fields=["testset", "annotator"], condition=models.Q(lifted_at__isnull=True),
                                    name="one_active_exclusion"),
        ]

    def __str__(self):
        state = "lifted" if self.lifted_at else "in force"
        return f"{self.annotator} excluded from {self.testset} ({state}): {self.reason}"
