"""Simulated studies: annotators and a model of known accuracy labelling images, the
panel test run on them (``heldout_scoring.panel_splits``, ``benchmark_core.panel_block``).

Pure, no Django. ``scripts/simulate_panel_coverage.py`` checks the panel interval's
coverage with it, and ``planning`` turns stated assumptions into a pilot and checks its
planned power against the power observed here.

Model: K = 3 labels, each image's true label uniform. Each annotator has an accuracy p_j,
drawn uniformly on [low, high]; on an image they answer the true label with probability
p_j, otherwise one of the other labels uniformly, independently given the truth. The model
answers right with probability ``model_accuracy`` (default the annotators' mean, so that
the true panel difference is 0: see the coverage script). With ``hard_share``, each image
is hard with that probability and everyone's accuracy, the model's included, drops by
``hard_drop`` on it (a case effect).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import heldout_scoring
from .benchmark_core import panel_block

LABELS = ["negative", "neutral", "positive"]
MODEL = "model"
NAN = float("nan")


@dataclass(frozen=True)
class Design:
    """Who labels what: every annotator every image (crossed), or a random crowd."""

    name: str
    n_annotators: int
    n_images: int
    votes_per_image: int | None  # None: fully crossed


@dataclass(frozen=True)
class Accuracy:
    """Accuracy distribution of the annotators, the model's accuracy and image difficulty."""

    low: float = 0.70
    high: float = 0.90
    hard_share: float = 0.0
    hard_drop: float = 0.3
    model_accuracy: float | None = None  # None: the annotators' mean (a true difference of 0)

    def __post_init__(self):
        # Every accuracy actually used, hard images included, must be a probability.
        drop = self.hard_drop if self.hard_share > 0 else 0.0
        if not (0.0 <= self.low - drop and self.low <= self.high <= 1.0):
            raise ValueError(
                f"accuracies [{self.low}, {self.high}] less a drop of {drop} leave [0, 1]"
            )
        if not 0.0 <= self.hard_share <= 1.0:
            raise ValueError(f"the share of hard images must be in [0, 1], got {self.hard_share}")

    @property
    def model(self) -> float:
        """The model's accuracy: as given, or the mean annotator accuracy (a true difference of 0)."""
        return (self.low + self.high) / 2 if self.model_accuracy is None else self.model_accuracy


@dataclass(frozen=True)
class Study:
    """One simulated study: votes, truth and the model's answers."""

    votes: pd.DataFrame  # columns image, annotator, label
    truth: np.ndarray  # label index per image
    hard: np.ndarray  # bool per image
    annotator_accuracy: np.ndarray  # p_j per annotator (before any difficulty drop)
    predictions: dict  # image -> label, the model's answers


@dataclass(frozen=True)
class Replicate:
    """What the project's panel test said about one simulated study."""

    difference: float
    lo: float
    hi: float
    df: float
    p_value: float

    @property
    def covers_zero(self) -> bool:
        return self.lo <= 0.0 <= self.hi

    @property
    def width(self) -> float:
        return self.hi - self.lo


def assignment(rng: np.random.Generator, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """(image index, annotator index) per vote.

    Crowd: for every image an independent random set of ``votes_per_image`` distinct
    annotators (the first columns of a random permutation per row).
    """
    n_img, n_ann = design.n_images, design.n_annotators
    if design.votes_per_image is None:
        return np.repeat(np.arange(n_img), n_ann), np.tile(np.arange(n_ann), n_img)
    if not 1 <= design.votes_per_image <= n_ann:
        raise ValueError(
            f"votes per image must be between 1 and {n_ann}, got {design.votes_per_image}"
        )
    chosen = np.argsort(rng.random((n_img, n_ann)), axis=1)[:, : design.votes_per_image]
    return np.repeat(np.arange(n_img), design.votes_per_image), chosen.ravel()


def noisy_answers(rng: np.random.Generator, truth: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """The true label with probability ``accuracy`` (elementwise), else another label
    uniformly: adding 1..K-1 modulo K reaches each wrong label equally often."""
    right = rng.random(truth.shape) < accuracy
    wrong = (truth + rng.integers(1, len(LABELS), size=truth.shape)) % len(LABELS)
    return np.where(right, truth, wrong)


def simulate_study(rng: np.random.Generator, design: Design, accuracy: Accuracy) -> Study:
    """Draw the truth, the difficulty, the annotators' accuracies, their votes and the model's."""
    truth = rng.integers(0, len(LABELS), size=design.n_images)
    hard = rng.random(design.n_images) < accuracy.hard_share
    drop = np.where(hard, accuracy.hard_drop, 0.0)
    p = rng.uniform(accuracy.low, accuracy.high, size=design.n_annotators)
    image, annotator = assignment(rng, design)
    answers = noisy_answers(rng, truth[image], p[annotator] - drop[image])
    model = noisy_answers(rng, truth, accuracy.model - drop)
    labels = np.array(LABELS, dtype=object)
    votes = pd.DataFrame(
        {
            "image": image,
            # Names sort in index order, as the project sorts annotators by str.
            "annotator": [f"a{j:03d}" for j in annotator],
            "label": labels[answers],
        }
    )
    return Study(votes, truth, hard, p, dict(zip(range(design.n_images), labels[model])))


def panel_replicate(study: Study, min_images: int = 20) -> Replicate:
    """The project's own panel test on one study: ``panel_splits`` then ``panel_block``."""
    splits = heldout_scoring.panel_splits(study.votes, LABELS)
    block = panel_block(splits, {MODEL: study.predictions}, min_images=min_images)
    entry = block["models"][0]
    lo, hi = entry["ci95"]
    return Replicate(
        difference=entry["difference"],
        lo=NAN if lo is None else lo,
        hi=NAN if hi is None else hi,
        df=NAN if entry["df"] is None else entry["df"],  # None: infinite or undefined
        p_value=NAN if entry["p_value"] is None else entry["p_value"],
    )




def panel_matrices_of(study: Study, min_images: int = 2):
    """The project's panel of one study as matrices (``benchmark_core.panel_matrices``), with
    every annotator who has ``min_images`` paired images."""
    from .benchmark_core import panel_matrices, panel_scores

    splits = heldout_scoring.panel_splits(study.votes, LABELS)
    included = [(split, human, by_model) for _, split, human, by_model
                in panel_scores(splits, {MODEL: study.predictions}) if split.n_images >= min_images]
    return panel_matrices(included, [MODEL])
