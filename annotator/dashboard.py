"""Figures for the staff dashboard: progress and time per annotator, counts per test set."""
from __future__ import annotations

import statistics
from collections import defaultdict
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
    agreement: dict | None  # evaluation.services.agreement_summary, with percentages added


def agreement_summary(testset: TestSet) -> dict | None:
    """The evaluation app's agreement summary (None without that app), with the two
    accuracies also as percentages for display."""
    try:
        from evaluation.services import agreement_summary as summary
    except ImportError:
        return None
    result = dict(summary(testset))
    for key in ("agreement_accuracy", "loo_agreement"):
        value = result.get(key)
        result[f"{key}_pct"] = None if value is None else 100 * value
    return result


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
                agreement=agreement_summary(testset),
            )
        )
    return stats
