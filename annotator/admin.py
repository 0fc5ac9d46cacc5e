from django.contrib import admin
from django.db.models import F, Func, IntegerField, OuterRef, Subquery
from django.utils.html import format_html
from django.urls import reverse

from .models import Image, TestSet, Vote, VoteEvent
from .voting import do_delete_vote


def _count(queryset) -> Subquery:
    """The number of rows of ``queryset`` (filtered by an OuterRef) as a subquery."""
    counted = queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Subquery(counted, output_field=IntegerField())


@admin.register(TestSet)
class TestSetAdmin(admin.ModelAdmin):
    list_display = ["name", "n_images", "n_votes", "created_at"]
    search_fields = ["name", "description"]

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
    list_display = ["key", "testset", "width", "height", "face_w", "n_votes", "created_at"]
    list_filter = ["testset"]
    search_fields = ["key", "sha256", "original_name"]
    readonly_fields = ["sha256", "file", "width", "height", "face_x", "face_y", "face_w", "face_h",
                       "created_at", "preview"]
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


@admin.register(VoteEvent)
class VoteEventAdmin(admin.ModelAdmin):
    """The append-only history; nobody edits it."""

    list_display = ["at", "action", "annotator", "image", "label", "previous_label"]
    ordering = ["-id"]
    list_filter = ["action", "image__testset", "annotator", "label"]
    search_fields = ["image__key", "annotator__username"]
    list_select_related = ["image__testset", "annotator"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # Only as part of deleting a whole image or test set, and only by a superuser.
        return request.user.is_superuser
