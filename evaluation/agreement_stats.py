"""How much annotators agree (thesis 7.2, 9.6): with the majority, leave-one-out, and
chance-corrected (Fleiss' kappa, Krippendorff's alpha, Cohen's kappa per pair).

Ties are never broken: an image whose top vote count is shared has no majority and is left
out of whatever needs a majority, and the number left out is reported beside it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .heldout_scoring import confusion_matrix
from .vote_tables import CodedVotes, Votes, as_votes, code_votes, unique_top


@dataclass(frozen=True)
class Agreement:
    """``n_matching`` of ``n_compared`` votes equal their reference; ``n_excluded`` had none."""

    n_matching: int
    n_compared: int
    n_excluded: int

    @property
    def accuracy(self) -> float:
        return self.n_matching / self.n_compared if self.n_compared else float("nan")


def agreement_accuracy_from_counts(counts: np.ndarray) -> Agreement:
    """Thesis 7.2 form, from an images x labels table of vote counts: over images with a
    majority, votes equal to it / all their votes.

    The voter's own vote counts, which inflates the figure (with 3 voters it cannot fall
    below 2/3); see ``loo_agreement_from_counts``. Votes on tied images are ``n_excluded``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    _, has_majority = unique_top(counts)
    per_image = counts.sum(axis=1)
    return Agreement(
        n_matching=int(counts.max(axis=1, initial=0)[has_majority].sum()),
        n_compared=int(per_image[has_majority].sum()),
        n_excluded=int(per_image[~has_majority].sum()),
    )


def _loo_outcome(coded: CodedVotes) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether the other votes on its image have a majority, and whether it matches."""
    others = coded.counts[coded.image_idx].copy()
    others[np.arange(len(others)), coded.label_idx] -= 1
    top, has_majority = unique_top(others)
    return has_majority, has_majority & (top == coded.label_idx)


def loo_agreement_from_counts(counts: np.ndarray) -> Agreement:
    """Leave-one-out form, from an images x labels table of vote counts: each vote against
    the majority of the *other* votes on its image. A vote whose other votes tie, or that
    is the image's only vote, is ``n_excluded``.

    All of an image's votes for one label meet the same other votes (the image's counts
    less one of that label), so they are compared as one group.
    """
    counts = np.asarray(counts, dtype=np.int64)
    matching = compared = total = 0
    for label in range(counts.shape[1]):
        group = counts[:, label] > 0
        others = counts[group].copy()
        others[:, label] -= 1
        top, has_majority = unique_top(others)
        n = counts[group, label]
        compared += int(n[has_majority].sum())
        matching += int(n[has_majority & (top == label)].sum())
        total += int(n.sum())
    return Agreement(matching, compared, total - compared)


def loo_agreement_by_annotator(votes: Votes, labels: Sequence[str]) -> dict[Hashable, Agreement]:
    """Leave-one-out agreement of each annotator's votes (their "deviance"), by sorted name.

    An annotator's figure equals their accuracy when held out (``holdout_split``): the
    majority of the other votes on an image is the majority of the other annotators.
    """
    coded = code_votes(as_votes(votes, labels), labels)
    compared, matching = _loo_outcome(coded)
    n = len(coded.annotators)
    n_compared = np.bincount(coded.annotator_idx, weights=compared, minlength=n)
    n_matching = np.bincount(coded.annotator_idx, weights=matching, minlength=n)
    n_votes = np.bincount(coded.annotator_idx, minlength=n)
    return {
        name: Agreement(int(n_matching[i]), int(n_compared[i]), int(n_votes[i] - n_compared[i]))
        for i, name in enumerate(coded.annotators)
    }


def choose_holdout(votes: Votes, labels: Sequence[str]) -> Hashable:
    """The annotator whose leave-one-out agreement is the median (thesis 9.6).

    "Neither the most nor the least deviant". Annotators are sorted by leave-one-out
    accuracy, then by name; with an even number the lower median is taken (the more
    deviant of the two middle ones), so the choice is deterministic. Annotators with
    no comparable vote cannot be scored and are not candidates.
    """
    by_annotator = loo_agreement_by_annotator(votes, labels)
    candidates = sorted(  # (accuracy, position in name order, name)
        (a.accuracy, i, name) for i, (name, a) in enumerate(by_annotator.items()) if a.n_compared
    )
    if not candidates:
        raise ValueError(
            "no annotator can be held out: no vote has other votes with a majority on its image"
        )
    return candidates[(len(candidates) - 1) // 2][2]





def fleiss_kappa_from_counts(counts: np.ndarray) -> float:
    """Fleiss' kappa from a subjects x categories count table; subjects may differ in raters.

    With the same number of raters per subject this is Fleiss (1971) exactly (as in
    statsmodels). For varying numbers it is the generalisation of Gwet (2014, Handbook
    of Inter-Rater Reliability, ch. 2; R/Python ``irrCAC`` ``fleiss.kappa.raw``):
    observed agreement averages, over subjects with >= 2 ratings, the share of agreeing
    rater pairs; chance agreement is sum_k pi_k^2 where pi_k is the mean over rated
    subjects of the share of their ratings in category k. Each subject weighs the same
    in both parts, as in the equal-rater formula. NaN when undefined (no subject with
    two ratings, or everything in one category).
    """
    counts = np.asarray(counts, dtype=float)
    n_rated = counts.sum(axis=1)
    counts, n_rated = counts[n_rated > 0], n_rated[n_rated > 0]
    multi = n_rated >= 2
    if not multi.any():
        return float("nan")
    pairs_agreeing = (counts[multi] * (counts[multi] - 1)).sum(axis=1)
    p_observed = np.mean(pairs_agreeing / (n_rated[multi] * (n_rated[multi] - 1)))
    pi = (counts / n_rated[:, None]).mean(axis=0)
    p_chance = float((pi**2).sum())
    if np.isclose(p_chance, 1.0):
        return float("nan")
    return float((p_observed - p_chance) / (1.0 - p_chance))


def krippendorff_alpha_from_counts(counts: np.ndarray) -> float:
    """Krippendorff's alpha, nominal, from a units x values count table.

    Missing values are simply absent from the counts; units with fewer than two values
    are not pairable and drop out, as in Krippendorff (2011, "Computing Krippendorff's
    alpha-reliability"). alpha = 1 - (n - 1) * D_o / D_e with
    D_o = sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) and D_e = n^2 - sum_c n_c^2.
    NaN when there is no pairable unit or only one value occurs.
    """
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if len(m) == 0:
        return float("nan")
    disagreeing = float(((m**2 - (counts**2).sum(axis=1)) / (m - 1)).sum())
    n_c = counts.sum(axis=0)
    n = n_c.sum()
    expected = float(n**2 - (n_c**2).sum())
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * disagreeing / expected)


@dataclass(frozen=True)
class PairKappa:
    a: Hashable
    b: Hashable
    n_images: int  # images both labelled
    kappa: float


def cohens_kappa_from_table(table: np.ndarray) -> float:
    """Cohen's kappa from a square contingency table; NaN when chance agreement is 1."""
    table = np.asarray(table, dtype=float)
    n = table.sum()
    if n == 0:
        return float("nan")
    p_observed = np.trace(table) / n
    p_chance = float((table.sum(axis=0) * table.sum(axis=1)).sum() / n**2)
    if np.isclose(p_chance, 1.0):
        return float("nan")
    return float((p_observed - p_chance) / (1.0 - p_chance))


def pairwise_cohens_kappa(votes: Votes, labels: Sequence[str]) -> list[PairKappa]:
    """Cohen's kappa of every annotator pair (a before b in sorted order)."""
    by_image = _labels_by_image(as_votes(votes, labels))
    names = list(by_image.columns)
    return [
        _pair_kappa(by_image, labels, a, b) for i, a in enumerate(names) for b in names[i + 1 :]
    ]


def _labels_by_image(frame: pd.DataFrame) -> pd.DataFrame:
    """Images x annotators table of labels, NaN where an annotator skipped an image."""
    return frame.pivot(index="image", columns="annotator", values="label").sort_index(axis=1)


def _pair_kappa(
    by_image: pd.DataFrame, labels: Sequence[str], a: Hashable, b: Hashable
) -> PairKappa:
    both = by_image[[a, b]].dropna()
    table = confusion_matrix(list(both[a]), list(both[b]), labels)
    return PairKappa(a, b, int(len(both)), cohens_kappa_from_table(table))
