"""Held-out scoring (SPEC "Human benchmark definitions"): an annotator, or a model, scored
on the images the held-out annotator labelled against a reference from the others' votes:
their majority (``MAJORITY``, the thesis' rule) or the Dawid-Skene estimate
(``DAWID_SKENE``). Ties are never broken: an image without a unique majority is left out and
counted.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .truth_inference import dawid_skene
from .vote_tables import (
    CodedVotes,
    Votes,
    as_votes,
    check_labels,
    code_votes,
    unique_top,
    vote_counts,
)

MAJORITY = "majority"
DAWID_SKENE = "dawid-skene"
REFERENCES = (MAJORITY, DAWID_SKENE)


@dataclass(frozen=True)
class Score:
    """Predictions scored against reference labels on a fixed image list."""

    labels: list[str]
    images: list
    correct: np.ndarray  # bool per image, in ``images`` order
    confusion_counts: np.ndarray  # rows: reference label, columns: prediction

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def n_correct(self) -> int:
        return int(self.correct.sum())

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_images if self.n_images else float("nan")

    @property
    def confusion(self) -> np.ndarray:
        """Row-normalised confusion (thesis Table 8): row = reference; NaN rows had no image."""
        return row_normalize(self.confusion_counts)


@dataclass(frozen=True)
class HeldOut:
    """The paired image set of a held-out annotator: their labels and the others' majority."""

    annotator: Hashable
    labels: list[str]
    images: list  # sorted
    reference: list[str]  # majority of the remaining annotators, per image
    human: list[str]  # the held-out annotator's label, per image
    tied: list = field(default_factory=list)  # images left out: remaining votes tie
    unreferenced: list = field(default_factory=list)  # images left out: no remaining vote

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def human_predictions(self) -> dict:
        return dict(zip(self.images, self.human))

    def score(self, predictions: Mapping) -> Score:
        """Score ``predictions`` (image -> label) on exactly this image set."""
        return score_predictions(self.images, self.reference, predictions, self.labels)


def holdout_split(
    votes: Votes, labels: Sequence[str], holdout: Hashable, reference: str = MAJORITY
) -> HeldOut:
    """For every image ``holdout`` labelled: the reference label from the remaining annotators.

    ``reference`` is ``MAJORITY`` (the majority of the remaining votes on the image) or
    ``DAWID_SKENE`` (the Dawid-Skene label estimated from all the remaining annotators'
    votes, on every image, so each of them is weighted by their estimated reliability).
    Images whose reference ties, or that nobody else labelled, are left out and listed;
    the held-out human and every model are then scored on the same images.
    """
    _check_reference(reference)
    frame = as_votes(votes, labels)
    mine = frame["annotator"] == holdout
    if not mine.any():
        known = ", ".join(map(str, sorted(frame["annotator"].unique(), key=str)))
        raise ValueError(f"annotator {holdout!r} has no votes; annotators: {known or 'none'}")
    own = frame[mine].set_index("image")["label"]
    own_images = sorted(own.index)
    if reference == MAJORITY:
        rest = frame[~mine & frame["image"].isin(own.index)]
        counts = vote_counts(rest, labels).reindex(own_images, fill_value=0).to_numpy()
        top, has_majority = unique_top(counts)
        referenced = {
            img: labels[t] for img, t, ok in zip(own_images, top, has_majority) if ok
        }
        voted = {img for img, n in zip(own_images, counts.sum(axis=1)) if n > 0}
    else:
        estimate = dawid_skene(frame[~mine], labels)
        referenced = {img: estimate.labels[img] for img in own_images if img in estimate.labels}
        voted = set(estimate.posteriors.index)
    images = [img for img in own_images if img in referenced]
    return HeldOut(
        annotator=holdout,
        labels=list(labels),
        images=images,
        reference=[referenced[img] for img in images],
        human=[own[img] for img in images],
        tied=[img for img in own_images if img not in referenced and img in voted],
        unreferenced=[img for img in own_images if img not in voted],
    )


def panel_splits(
    votes: Votes, labels: Sequence[str], reference: str = MAJORITY
) -> dict[Hashable, HeldOut]:
    """Every annotator held out in turn (``holdout_split``), by sorted name."""
    frame = as_votes(votes, labels)
    names = sorted(frame["annotator"].unique(), key=str)
    if reference != MAJORITY:
        return {name: holdout_split(frame, labels, name, reference) for name in names}
    return _majority_splits(code_votes(frame, labels), list(labels), names)


def _majority_splits(coded: CodedVotes, labels: list[str], names: list) -> dict[Hashable, HeldOut]:
    """``holdout_split`` against the majority for every annotator at once: an annotator's
    reference on an image is the image's counts less their own vote, so the votes are
    counted once, not once per annotator (a crowd study of 40 annotators: 40 times fewer)."""
    others = coded.counts[coded.image_idx].copy()
    others[np.arange(len(others)), coded.label_idx] -= 1
    top, has_majority = unique_top(others)
    voted = others.sum(axis=1) > 0
    position = {name: j for j, name in enumerate(coded.annotators)}
    order = np.lexsort((coded.image_idx, coded.annotator_idx))  # by annotator, then image (sorted)
    starts = np.searchsorted(coded.annotator_idx[order], np.arange(len(coded.annotators)))
    ends = np.append(starts[1:], len(order))
    splits = {}
    for name in names:
        j = position[name]
        rows = order[starts[j]:ends[j]]
        images = coded.images[coded.image_idx[rows]]
        ok, any_vote = has_majority[rows], voted[rows]
        splits[name] = HeldOut(
            annotator=name,
            labels=labels,
            images=list(images[ok]),
            reference=[labels[t] for t in top[rows][ok]],
            human=[labels[t] for t in coded.label_idx[rows][ok]],
            tied=list(images[~ok & any_vote]),
            unreferenced=list(images[~any_vote]),
        )
    return splits


def _check_reference(reference: str) -> None:
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {', '.join(REFERENCES)}")


def score_predictions(
    images: Sequence, reference: Sequence[str], predictions: Mapping, labels: Sequence[str]
) -> Score:
    """Accuracy, correctness per image and confusion of ``predictions`` on ``images``.

    Every image must have a prediction: scoring a subset would break the pairing with
    the human. Predictions for other images are ignored.
    """
    check_labels(labels)
    if len(images) != len(reference):
        raise ValueError(f"{len(images)} images but {len(reference)} reference labels")
    missing = [img for img in images if img not in predictions]
    if missing:
        raise ValueError(
            f"no prediction for {len(missing)} of {len(images)} images (first: {missing[0]!r})"
        )
    predicted = [predictions[img] for img in images]
    unknown = sorted(set(predicted) - set(labels), key=str)
    if unknown:
        raise ValueError(f"prediction(s) {', '.join(map(repr, unknown))} not in {list(labels)}")
    return Score(
        labels=list(labels),
        images=list(images),
        correct=np.array([p == r for p, r in zip(predicted, reference)], dtype=bool),
        confusion_counts=confusion_matrix(reference, predicted, labels),
    )


def confusion_matrix(
    reference: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """Counts: rows = reference label, columns = predicted label, both in ``labels`` order."""
    pos = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r, p in zip(reference, predicted, strict=True):
        counts[pos[r], pos[p]] += 1
    return counts


def row_normalize(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum; a row with no images is NaN rather than a fake zero."""
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / totals, np.nan)
