"""Dawid-Skene: labels estimated from each annotator's confusion matrix, beside the plain
majority."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .vote_tables import Votes, as_votes, code_votes


@dataclass(frozen=True)
class DawidSkene:
    """Labels estimated from annotator confusion matrices, beside the plain majority."""

    labels: dict  # image -> label of highest posterior, unique top only
    tied: list  # images whose top posterior is shared
    posteriors: pd.DataFrame  # images x labels, rows sum to 1
    priors: np.ndarray  # estimated share of each true label
    confusions: dict  # annotator -> true x given matrix, rows sum to 1
    n_iterations: int
    converged: bool


def dawid_skene(
    votes: Votes,
    labels: Sequence[str],
    max_iterations: int = 100,
    tolerance: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkene:
    """Dawid & Skene (1979) EM: each annotator has a confusion matrix, each image a hidden label.

    Starts from the vote shares per image (a soft majority), so a study where everyone
    agrees gets the majority back. ``smoothing`` is added to every count before it is
    normalised, which keeps a label an annotator never used from getting probability
    zero and vetoing an image. Deterministic: there is no random start.
    """
    coded = code_votes(as_votes(votes, labels), labels)
    n_images, n_labels = coded.counts.shape
    n_annotators = len(coded.annotators)
    with np.errstate(invalid="ignore"):
        posteriors = coded.counts / coded.counts.sum(axis=1, keepdims=True)
    priors = np.full(n_labels, 1.0 / n_labels)
    confusions = np.zeros((n_annotators, n_labels, n_labels))
    converged = n_images == 0
    iteration = 0
    true_idx = np.arange(n_labels)[None, :]
    while not converged and iteration < max_iterations:
        iteration += 1
        # M step: priors and confusion counts weighted by the current posteriors.
        priors = posteriors.sum(axis=0) + smoothing
        priors /= priors.sum()
        confusions = np.full((n_annotators, n_labels, n_labels), smoothing)
        np.add.at(
            confusions,
            (coded.annotator_idx[:, None], true_idx, coded.label_idx[:, None]),
            posteriors[coded.image_idx],
        )
        confusions /= confusions.sum(axis=2, keepdims=True)
        # E step: posterior of each true label given the image's votes.
        log_post = np.tile(np.log(priors), (n_images, 1))
        np.add.at(
            log_post, coded.image_idx, np.log(confusions[coded.annotator_idx, :, coded.label_idx])
        )
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        converged = bool(np.abs(updated - posteriors).max() < tolerance)
        posteriors = updated
    top = posteriors.max(axis=1, initial=0)
    unique = (np.isclose(posteriors, top[:, None], rtol=0, atol=1e-12).sum(axis=1) == 1) & (top > 0)
    best = posteriors.argmax(axis=1)
    return DawidSkene(
        labels={img: labels[b] for img, b, ok in zip(coded.images, best, unique) if ok},
        tied=[img for img, ok in zip(coded.images, unique) if not ok],
        posteriors=pd.DataFrame(
            posteriors, index=pd.Index(coded.images, name="image"), columns=list(labels)
        ),
        priors=priors,
        confusions={name: confusions[i] for i, name in enumerate(coded.annotators)},
        n_iterations=iteration,
        converged=converged,
    )
