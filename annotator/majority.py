"""Majority label of one image's votes, with ties reported and never broken.

Pure Python on purpose (no Django): the export and the live demo's clip call it on plain
lists of labels. Full agreement statistics live in the ``evaluation`` metric modules (votes, agreement, heldout, significance, dawid_skene).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from ferml.labels import BIN3


@dataclass(frozen=True)
class ImageMajority:
    label: str | None  # None when the image has no votes or its top labels tie
    counts: dict[str, int]  # votes per label, every label present (0 when none)
    n_votes: int
    tie: bool  # two or more labels share the highest count

    @property
    def agreement(self) -> float | None:
        """Share of the votes equal to the majority; None without a majority."""
        if self.label is None:
            return None
        return self.counts[self.label] / self.n_votes


def image_majority(votes: Iterable[str], labels: Sequence[str] = BIN3) -> ImageMajority:
    """Majority of one image's vote labels (thesis 7.2; SPEC "Human benchmark definitions").

    >>> image_majority(["positive", "positive", "neutral"]).label
    'positive'
    >>> image_majority(["positive", "neutral"]).tie
    True
    """
    tally = Counter(votes)
    unknown = set(tally) - set(labels)
    if unknown:
        raise ValueError(f"unknown label(s) {sorted(unknown)}; expected one of {list(labels)}")
    return majority_of_counts({label: tally.get(label, 0) for label in labels})


def majority_of_counts(counts: Mapping[str, int]) -> ImageMajority:
    """``image_majority`` from the number of votes per label (every label of the set, in
    order), as the database counts them for a whole test set at once."""
    counts = dict(counts)
    n_votes = sum(counts.values())
    if n_votes == 0:
        return ImageMajority(label=None, counts=counts, n_votes=0, tie=False)
    top = max(counts.values())
    leaders = [label for label, n in counts.items() if n == top]
    if len(leaders) > 1:
        return ImageMajority(label=None, counts=counts, n_votes=n_votes, tie=True)
    return ImageMajority(label=leaders[0], counts=counts, n_votes=n_votes, tie=False)
