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
from django.db.models import Count

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
    """Everyone who voted on ``testset``, and every active annotator who has not started."""
    times: dict[str, list[int]] = defaultdict(list)
    done: dict[str, int] = {
        name: 0
        for name in get_user_model().objects.filter(is_active=True, is_staff=False).values_list(
            "username", flat=True
        )
    }
    for username, ms in Vote.objects.filter(image__testset=testset).values_list(
        "annotator__username", "time_spent_ms"
    ):
        done[username] = done.get(username, 0) + 1
        if ms is not None:
            times[username].append(ms)
    return [
        AnnotatorProgress(
            username=name,
            done=done[name],
            total=n_images,
            mean_ms=statistics.fmean(times[name]) if times[name] else None,
            median_ms=statistics.median(times[name]) if times[name] else None,
        )
        for name in sorted(done)
    ]


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
