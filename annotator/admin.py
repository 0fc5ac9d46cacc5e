from django.contrib import admin
from django.db.models import F, Func, IntegerField, OuterRef, Subquery
from django.urls import reverse
from django.utils.html import format_html

from .models import Exclusion, Image, TestSet, Vote, VoteEvent
from .voting import do_delete_vote


def _count(queryset) -> Subquery:
    """The number of rows of ``queryset`` (filtered by an OuterRef) as a subquery."""
    counted = queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Subquery(counted, output_field=IntegerField())


@admin.register(TestSet)
class TestSetAdmin(admin.ModelAdmin):
    list_display = ["name", "label_scheme", "votes_per_image", "n_images", "n_votes", "created_at"]
    search_fields = ["name", "description"]
    # The scheme is fixed at creation; how images are served changes on the test set's page
    # (or configure_testset), which also recounts each image.
    readonly_fields = ["label_scheme", "custom_labels", "extra_answers", "votes_per_image", "max_votes_per_image",
                       "adaptive_stop", "control_rate", "control_feedback"]

    def get_queryset(self, request):
        # Counted per listed row by subqueries (a join of images and votes would be counted
        # for every test set and vote before the page is cut).
        return super().get_queryset(request).annotate(
            _images=_count(Image.objects.filter(testset=OuterRef("pk"))),
            _votes=_count(Vote.objects.filter(testset=OuterRef("pk"))),
        )

    @admin.display(ordering="_images", description="images")
    def n_images(self, obj):
        return obj._images

    @admin.display(ordering="_votes", description="votes")
    def n_votes(self, obj):
        return obj._votes


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["key", "testset", "width", "height", "face_w", "control_label", "n_votes", "created_at"]
    list_filter = ["testset"]
    search_fields = ["key", "sha256", "original_name"]
    # A control image is marked on the test set's page or by import_controls, which keep the
    # served orders in step.
    readonly_fields = ["sha256", "file", "width", "height", "face_x", "face_y", "face_w", "face_h",
                       "control_label", "created_at", "preview"]
    list_select_related = ["testset"]

    class Media:
        css = {"all": ["annotator/admin.css"]}  # no inline style: the Content-Security-Policy forbids it

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_votes=_count(Vote.objects.filter(image=OuterRef("pk"))))

    @admin.display(ordering="_votes", description="votes")
    def n_votes(self, obj):
        return obj._votes

    @admin.display(description="preview")
    def preview(self, obj):
        if not obj.pk:
            return ""
        return format_html('<img class="face-preview" src="{}" alt="">',
                           reverse("annotator:image", args=[obj.testset.name, obj.pk]))


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    """Read-only: votes change through the labelling page or import_votes, which record
    every change; a deletion here is recorded as VoteEvent(delete)."""

    list_display = ["image", "annotator", "label", "time_spent_ms", "updated_at"]
    ordering = ["-id"]  # newest first, along the primary key: no sort of every vote
    list_filter = ["image__testset", "annotator", "label"]
    search_fields = ["image__key", "annotator__username"]
    list_select_related = ["image__testset", "annotator"]
    readonly_fields = ["image", "annotator", "label", "time_spent_ms", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        do_delete_vote(obj)

    def delete_queryset(self, request, queryset):
        for vote in queryset:
            do_delete_vote(vote)


class RecordAdmin(admin.ModelAdmin):
    """A record that is read, never written here: deleted only with its whole image or test
    set, and only by a superuser."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(VoteEvent)
class VoteEventAdmin(RecordAdmin):
    """The append-only history; nobody edits it."""

    list_display = ["at", "action", "annotator", "image", "label", "previous_label"]
    ordering = ["-id"]
    list_filter = ["action", "image__testset", "annotator", "label"]
    search_fields = ["image__key", "annotator__username"]
    list_select_related = ["image__testset", "annotator"]
    date_hierarchy = "at"


@admin.register(Exclusion)
class ExclusionAdmin(RecordAdmin):
    """The record of annotators left out of a test set's statistics; staff exclude and count
    again on the annotator quality page."""

    list_display = ["testset", "annotator", "reason", "created_by", "created_at", "lifted_by", "lifted_at"]
    list_filter = ["testset"]
    list_select_related = ["testset", "annotator", "created_by", "lifted_by"]
