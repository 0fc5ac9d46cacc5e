"""Figures for the staff dashboard: progress and time per annotator, counts per test set.

Other apps may add a section to each test set's entry (``add_section``): the evaluation
app adds its agreement figures and a link to its report, so this app needs nothing of it.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, F, Q, Window
from django.db.models.functions import RowNumber

from .models import TestSet, Vote


@dataclass(frozen=True)
class AnnotatorProgress:
    username: str
    done: int
    total: int
    mean_ms: float | None
    median_ms: float | None

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def mean_s(self) -> float | None:
        return None if self.mean_ms is None else self.mean_ms / 1000

    @property
    def median_s(self) -> float | None:
        return None if self.median_ms is None else self.median_ms / 1000


@dataclass(frozen=True)
class TestSetStats:
    testset: TestSet
    n_images: int
    n_votes: int
    n_annotators: int  # people with at least one vote
    annotators: list[AnnotatorProgress]
    sections: list[tuple[str, dict]]  # (template, its ``section``) added by other apps


# template name -> function of a test set giving the template's context
_sections: dict[str, Callable[[TestSet], dict]] = {}


def add_section(template: str, context: Callable[[TestSet], dict]) -> None:
    """Show ``template`` in each test set's entry, rendered with ``testset`` and
    ``section = context(testset)``. Apps call this from ``AppConfig.ready``; adding a
    template again replaces its context function."""
    _sections[template] = context


def testset_sections(testset: TestSet) -> list[tuple[str, dict]]:
    return [(template, context(testset)) for template, context in _sections.items()]


def annotator_progress(testset: TestSet, n_images: int) -> list[AnnotatorProgress]:
    """Everyone who voted on ``testset``, and every active annotator who has not started.

    Counted by the database, one row per annotator, however many votes there are.
    """
    votes = Vote.objects.filter(testset=testset).order_by()
    figures = {
        row["annotator_id"]: row
        for row in votes.values("annotator_id").annotate(done=Count("id"), mean_ms=Avg("time_spent_ms"))
    }
    medians = median_time_ms(testset)
    names = dict(get_user_model().objects.filter(
        Q(pk__in=list(figures)) | Q(is_active=True, is_staff=False)).values_list("pk", "username"))
    people = []
    for user_id, name in names.items():
        row = figures.get(user_id, {"done": 0, "mean_ms": None})
        people.append(AnnotatorProgress(username=name, done=row["done"], total=n_images,
                                        mean_ms=row["mean_ms"], median_ms=medians.get(user_id)))
    return sorted(people, key=lambda p: p.username)


def median_time_ms(testset: TestSet) -> dict[int, float]:
    """Median time per image of each annotator (user id -> ms) over their timed votes.

    The database numbers each annotator's times in order and returns only the middle one or
    two, so nothing is read per vote; two middle values are averaged, as ``statistics.median``.
    """
    ranked = (
        Vote.objects.filter(testset=testset, time_spent_ms__isnull=False).order_by()
        .annotate(
            n=Window(Count("id"), partition_by=[F("annotator_id")]),
            at=Window(RowNumber(), partition_by=[F("annotator_id")], order_by=[F("time_spent_ms").asc()]),
        )
        .filter(at__gte=(F("n") + 1) / 2, at__lte=F("n") / 2 + 1)
        .values_list("annotator_id", "time_spent_ms")
    )
    middles: dict[int, list[int]] = defaultdict(list)
    for user_id, ms in ranked:
        middles[user_id].append(ms)
    return {user_id: statistics.fmean(values) for user_id, values in middles.items()}


def testset_stats() -> list[TestSetStats]:
    stats = []
    for testset in TestSet.objects.annotate(n_images=Count("images")).order_by("name"):
        people = annotator_progress(testset, testset.n_images)
        stats.append(
            TestSetStats(
                testset=testset,
                n_images=testset.n_images,
                n_votes=sum(p.done for p in people),
                n_annotators=sum(1 for p in people if p.done),
                annotators=people,
                sections=testset_sections(testset),
            )
        )
    return stats


@dataclass(frozen=True)
class PoolProgress:
    """Where a pooled test set stands: its regular images by state, and the votes left."""

    n_images: int
    complete: int
    in_progress: int  # with a vote or held by a lease, not complete
    untouched: int
    votes: int
    votes_needed: int  # at least; adaptive overlap may ask for more on disagreement
    votes_saved: int  # below the maximum on images an adaptive rule stopped early
    adaptive: bool
    stuck: int = 0  # open images every annotator so far has voted on: only new annotators can finish them
    n_annotators: int = 0  # people who voted on the test set


def pool_progress(testset: TestSet) -> PoolProgress:
    """Counted by the database from each image's kept state (``Image.n_votes``, ``n_needed``)."""
    from django.db.models import Exists, OuterRef, Sum
    from django.utils import timezone

    from .models import Image, Lease

    regular = Image.objects.filter(testset=testset, control_label="").order_by()
    leased = Lease.objects.filter(image=OuterRef("pk"), expires_at__gt=timezone.now(), skipped=False)
    figures = regular.aggregate(
        n=Count("pk"), n_complete=Count("pk", filter=Q(complete=True)),
        started=Count("pk", filter=Q(complete=False, n_votes__gt=0)),
        votes=Sum("n_votes"), needed=Sum("n_needed", filter=Q(complete=False)),
    )
    held = regular.filter(complete=False, n_votes=0).filter(Exists(leased)).count()
    rule = testset.overlap
    saved = 0
    if rule is not None and rule.adaptive:
        stopped = regular.filter(complete=True, n_votes__lt=rule.maximum).aggregate(
            n=Count("pk"), votes=Sum("n_votes"))
        saved = rule.maximum * stopped["n"] - (stopped["votes"] or 0)
    in_progress = figures["started"] + held
    voters = Vote.objects.filter(testset=testset).order_by().values("annotator_id").distinct().count()
    stuck = regular.filter(complete=False, n_votes__gte=voters).count() if voters else 0
    return PoolProgress(figures["n"], figures["n_complete"], in_progress,
                        figures["n"] - figures["n_complete"] - in_progress, figures["votes"] or 0,
                        figures["needed"] or 0, saved, bool(rule and rule.adaptive), stuck, voters)
