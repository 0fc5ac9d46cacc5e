"""Annotator quality: how far each annotator agrees with the others, how they use the
labels, how fast they vote, and how they do on control images (SPEC "Crowd-shaped studies").

Pure functions over integer codes, no Django: ``services.annotator_quality`` reads the
votes of a test set and calls ``quality_table``.

Each vote on a regular image is compared with the majority of the *other* counted votes
on its image (leave-one-out, as ``agreement_stats.loo_agreement_from_counts``); the votes of an excluded
annotator count in nobody's majority, and their own votes are compared with the majority
of the counted votes. All of an image's votes for one label meet the same other votes, so
the comparison is made once per image and label, not once per vote.

Flags, each with its reason: a median time per vote under ``min_median_seconds``; one
answer in more than ``max_label_share`` of an annotator's votes; leave-one-out agreement
or control accuracy significantly below the rest of the panel's (one-sided exact binomial
test against the pooled rate of the other annotators, at ``alpha`` divided by the number
of annotators tested: Bonferroni).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from .agreement_stats import cohens_kappa_from_table
from .vote_tables import unique_top


@dataclass(frozen=True)
class Thresholds:
    min_median_seconds: float = 1.0
    max_label_share: float = 0.8
    alpha: float = 0.05


@dataclass(frozen=True)
class CodedVotes:
    """Votes as codes: per vote its annotator (0..J-1), image (0..I-1) and answer (0..A-1;
    the first ``n_labels`` answers are labels, the rest extra answers)."""

    annotator: np.ndarray
    image: np.ndarray
    answer: np.ndarray


def wilson(k: int, n: int, confidence: float = 0.95) -> list[float | None]:
    """Wilson score interval of k of n (statsmodels); [None, None] without trials."""
    if n == 0:
        return [None, None]
    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    return [float(lo), float(hi)]


def medians_by_group(groups: np.ndarray, values: np.ndarray, n_groups: int) -> list[float | None]:
    """The median of ``values`` in each group 0..n_groups-1 (None for an empty group), as
    ``statistics.median``: two middle values are averaged."""
    order = np.lexsort((values, groups))
    groups, values = groups[order], values[order]
    starts = np.searchsorted(groups, np.arange(n_groups), side="left")
    ends = np.searchsorted(groups, np.arange(n_groups), side="right")
    medians = []
    for start, end in zip(starts, ends):
        n = end - start
        if n == 0:
            medians.append(None)
        else:
            middle = start + (n - 1) // 2
            medians.append(float((values[middle] + values[start + n // 2]) / 2))
    return medians


def loo_comparison(votes: CodedVotes, n_images: int, n_labels: int, counted: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: the majority label of the other counted votes on its image (-1: none, a tie,
    or an extra answer), and whether the vote is a label compared with it.

    ``counted``: per annotator, whether their votes count in the majorities (not excluded).
    """
    is_label = votes.answer < n_labels
    in_majority = is_label & counted[votes.annotator]
    counts = np.zeros((n_images, n_labels), dtype=np.int64)
    np.add.at(counts, (votes.image[in_majority], votes.answer[in_majority]), 1)
    majority = np.full(len(votes.answer), -1, dtype=np.int64)
    # the same "others" for every counted vote of one label on one image, and for every
    # vote of an excluded annotator on it: one majority per image and label (or none)
    for label in range(n_labels):
        others = counts.copy()
        others[:, label] -= 1
        top, unique = unique_top(np.maximum(others, 0))
        own = in_majority & (votes.answer == label)
        majority[own] = np.where(unique[votes.image[own]], top[votes.image[own]], -1)
    top, unique = unique_top(counts)
    outside = is_label & ~counted[votes.annotator]
    majority[outside] = np.where(unique[votes.image[outside]], top[votes.image[outside]], -1)
    return majority, is_label & (majority >= 0)


def quality_table(
    names: Sequence[str], votes: CodedVotes, n_images: int, answers: Sequence[str], n_labels: int,
    excluded: Sequence[bool], median_seconds: Sequence[float | None],
    control_votes: tuple[np.ndarray, np.ndarray] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[dict]:
    """One row per annotator (in ``names`` order): votes (control images included), regular
    images voted (one vote per image and annotator), median seconds per vote,
    leave-one-out agreement with its Wilson interval, Cohen's kappa against the others'
    majority, the confusion matrix against it (rows: the majority, columns: the vote), the
    share of the most used answer, control accuracy with its interval, and flags.

    ``control_votes``: per vote on a control image, its annotator and whether it was right.
    """
    n_annotators = len(names)
    counted = ~np.asarray(excluded, dtype=bool)
    majority, compared = loo_comparison(votes, n_images, n_labels, counted)
    matching = compared & (majority == votes.answer)
    by = votes.annotator
    n_votes = np.bincount(by, minlength=n_annotators)
    n_compared = np.bincount(by, weights=compared, minlength=n_annotators).astype(int)
    n_matching = np.bincount(by, weights=matching, minlength=n_annotators).astype(int)
    answer_counts = np.zeros((n_annotators, len(answers)), dtype=np.int64)
    np.add.at(answer_counts, (by, votes.answer), 1)
    confusion = np.zeros((n_annotators, n_labels, n_labels), dtype=np.int64)
    np.add.at(confusion, (by[compared], majority[compared], votes.answer[compared]), 1)

    ctrl_n = np.zeros(n_annotators, dtype=int)
    ctrl_right = np.zeros(n_annotators, dtype=int)
    if control_votes is not None and len(control_votes[0]):
        ctrl_n = np.bincount(control_votes[0], minlength=n_annotators)
        ctrl_right = np.bincount(control_votes[0], weights=control_votes[1], minlength=n_annotators).astype(int)

    tested_agreement = int((counted & (n_compared > 0)).sum()) or 1
    tested_controls = int((counted & (ctrl_n > 0)).sum()) or 1
    rows = []
    for j, name in enumerate(names):
        flags = []
        median = median_seconds[j]
        if median is not None and median < thresholds.min_median_seconds:
            flags.append(f"fast: median {median:.2f} s per vote (under {thresholds.min_median_seconds:g} s)")
        share = answer_counts[j].max() / n_votes[j] if n_votes[j] else None
        top_answer = answers[int(answer_counts[j].argmax())] if n_votes[j] else None
        if share is not None and share > thresholds.max_label_share:
            flags.append(f"one answer: {share:.0%} of the votes are {top_answer!r} "
                         f"(over {thresholds.max_label_share:.0%})")
        others = counted.copy()
        others[j] = False
        agreement_p = _below_panel(n_matching[j], n_compared[j], n_matching[others].sum(), n_compared[others].sum())
        if agreement_p is not None and agreement_p < thresholds.alpha / tested_agreement:
            flags.append(f"agreement below the panel's: {n_matching[j] / n_compared[j]:.1%} against "
                         f"{n_matching[others].sum() / n_compared[others].sum():.1%} (p = {agreement_p:.2g})")
        control_p = _below_panel(ctrl_right[j], ctrl_n[j], ctrl_right[others].sum(), ctrl_n[others].sum())
        if control_p is not None and control_p < thresholds.alpha / tested_controls:
            flags.append(f"control accuracy below the panel's: {ctrl_right[j] / ctrl_n[j]:.1%} against "
                         f"{ctrl_right[others].sum() / ctrl_n[others].sum():.1%} (p = {control_p:.2g})")
        rows.append({
            "annotator": name,
            "excluded": bool(excluded[j]),
            "n_votes": int(n_votes[j] + ctrl_n[j]),
            "n_images": int(n_votes[j]),
            "median_seconds": None if median is None else float(median),
            "loo_agreement": n_matching[j] / n_compared[j] if n_compared[j] else None,
            "loo_n_compared": int(n_compared[j]),
            "loo_ci95": wilson(int(n_matching[j]), int(n_compared[j])),
            "agreement_p_below_panel": agreement_p,
            "cohens_kappa": _finite(cohens_kappa_from_table(confusion[j])),
            "confusion_counts": confusion[j].tolist(),
            "top_answer": top_answer,
            "top_answer_share": None if share is None else float(share),
            "answer_counts": dict(zip(answers, answer_counts[j].tolist())),
            "control_votes": int(ctrl_n[j]),
            "control_accuracy": ctrl_right[j] / ctrl_n[j] if ctrl_n[j] else None,
            "control_ci95": wilson(int(ctrl_right[j]), int(ctrl_n[j])),
            "control_p_below_panel": control_p,
            "flags": flags,
        })
    return rows


def _below_panel(k: int, n: int, k_others: int, n_others: int) -> float | None:
    """One-sided exact binomial p that k of n is below the others' pooled rate."""
    if n == 0 or n_others == 0:
        return None
    rate = k_others / n_others
    if rate <= 0:
        return None
    return float(binomtest(int(k), int(n), min(rate, 1.0), alternative="less").pvalue)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
