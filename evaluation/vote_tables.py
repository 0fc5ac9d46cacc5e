"""Votes as tables (thesis 7.2; SPEC "Human benchmark definitions"): one label per (image,
annotator), counted per image and label, and the study's design in numbers.

Pure functions, no Django: services query the ORM, build the votes and call these. Votes are
given as a DataFrame with columns ``image, annotator, label`` or as an iterable of
``(image, annotator, label)`` triples. ``labels`` is the ordered label list (e.g.
``["negative", "neutral", "positive"]``); it fixes the column order of vote counts. Images
and annotators are sorted, so every result is independent of the vote order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

VOTE_COLUMNS = ["image", "annotator", "label"]

Votes = pd.DataFrame | Iterable[tuple[Hashable, Hashable, str]]


def as_votes(votes: Votes, labels: Sequence[str]) -> pd.DataFrame:
    """Validated votes as a DataFrame with columns image, annotator, label.

    Raises ValueError for a label outside ``labels`` or a second vote by the same
    annotator on the same image: either would silently change every figure.
    """
    check_labels(labels)
    if isinstance(votes, pd.DataFrame):
        missing = [c for c in VOTE_COLUMNS if c not in votes.columns]
        if missing:
            raise ValueError(f"votes lack the column(s) {', '.join(missing)}")
        frame = votes[VOTE_COLUMNS].reset_index(drop=True)
    else:
        frame = pd.DataFrame(list(votes), columns=VOTE_COLUMNS)
    unknown = sorted(set(frame["label"]) - set(labels), key=str)
    if unknown:
        raise ValueError(
            f"vote label(s) {', '.join(map(repr, unknown))} not in the label set {list(labels)}"
        )
    repeated = frame.duplicated(["image", "annotator"])
    if repeated.any():
        first = frame[repeated].iloc[0]
        raise ValueError(
            f"annotator {first['annotator']!r} voted more than once on image {first['image']!r}"
        )
    return frame


def check_labels(labels: Sequence[str]) -> None:
    if len(labels) == 0:
        raise ValueError("the label set is empty")
    if len(set(labels)) != len(labels):
        raise ValueError(f"the label set {list(labels)} repeats a label")


@dataclass(frozen=True)
class CodedVotes:
    """Votes as integer codes: the shared starting point of every count below."""

    images: np.ndarray  # sorted unique image ids
    annotators: np.ndarray  # sorted unique annotator ids
    image_idx: np.ndarray  # per vote
    annotator_idx: np.ndarray  # per vote
    label_idx: np.ndarray  # per vote
    counts: np.ndarray  # images x labels


def code_votes(frame: pd.DataFrame, labels: Sequence[str]) -> CodedVotes:
    images, image_idx = np.unique(frame["image"].to_numpy(dtype=object), return_inverse=True)
    annotators, annotator_idx = np.unique(
        frame["annotator"].to_numpy(dtype=object), return_inverse=True
    )
    label_pos = {label: i for i, label in enumerate(labels)}
    label_idx = np.array([label_pos[x] for x in frame["label"]], dtype=np.intp)
    counts = np.zeros((len(images), len(labels)), dtype=np.int64)
    np.add.at(counts, (image_idx, label_idx), 1)
    return CodedVotes(images, annotators, image_idx, annotator_idx, label_idx, counts)


def vote_counts(votes: Votes, labels: Sequence[str]) -> pd.DataFrame:
    """Votes per image (rows, sorted) and label (columns, in ``labels`` order)."""
    coded = code_votes(as_votes(votes, labels), labels)
    return pd.DataFrame(
        coded.counts, index=pd.Index(coded.images, name="image"), columns=list(labels)
    )


def unique_top(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's top count, and whether that top is unique and non-zero."""
    top = counts.max(axis=1, initial=0)
    n_top = (counts == top[:, None]).sum(axis=1)
    return counts.argmax(axis=1), (n_top == 1) & (top > 0)


def vote_summary(votes: Votes, labels: Sequence[str]) -> dict:
    """Size of a vote set: images with at least one vote, annotators, votes, tied images."""
    coded = code_votes(as_votes(votes, labels), labels)
    return vote_summary_from_counts(coded.counts, len(coded.annotators))


def vote_summary_from_counts(counts: np.ndarray, n_annotators: int) -> dict:
    """``vote_summary`` from an images x labels table of vote counts (rows without a vote
    are not images with a vote) and the number of annotators."""
    counts = np.asarray(counts, dtype=np.int64)
    counts = counts[counts.sum(axis=1) > 0]
    _, has_majority = unique_top(counts)
    return {
        "n_images": int(len(counts)),
        "n_annotators": int(n_annotators),
        "n_votes": int(counts.sum()),
        "n_ties": int((~has_majority).sum()),
    }


def design_summary(votes: Votes, labels: Sequence[str]) -> dict:
    """How the votes cover the images: fully crossed (every annotator labelled every image)
    or partial overlap, with the mean images per annotator, the mean annotators per image
    and the pairs of annotators that share at least one image."""
    coded = code_votes(as_votes(votes, labels), labels)
    n_images, n_annotators, n_votes = len(coded.images), len(coded.annotators), len(coded.label_idx)
    incidence = np.zeros((n_annotators, n_images), dtype=np.float32)
    incidence[coded.annotator_idx, coded.image_idx] = 1
    shared = incidence @ incidence.T
    pairs = n_annotators * (n_annotators - 1) // 2
    sharing = int((np.triu(shared, k=1) > 0).sum())
    return {
        "fully_crossed": bool(n_votes == n_images * n_annotators and n_votes > 0),
        "n_annotators": n_annotators,
        "n_images": n_images,
        "mean_images_per_annotator": n_votes / n_annotators if n_annotators else None,
        "mean_annotators_per_image": n_votes / n_images if n_images else None,
        "n_annotator_pairs": pairs,
        "n_pairs_sharing_images": sharing,
    }
