"""Agreement and held-out benchmark metrics (thesis 7.2, 9.6; SPEC "Human benchmark definitions").

Pure functions, no Django: services query the ORM, build the votes and call these.

Votes are one label per (image, annotator), given as a DataFrame with columns
``image, annotator, label`` or as an iterable of ``(image, annotator, label)`` triples.
``labels`` is the ordered label list (e.g. ``["negative", "neutral", "positive"]``); it
fixes the column order of vote counts and the row/column order of confusion matrices.
Images and annotators are sorted, so every result is independent of the vote order.

Ties are never broken: an image whose top vote count is shared has no majority and is
left out of whatever needs a majority, and the number left out is reported beside it.

The reference a held-out annotator is scored against is the majority of the others
(``MAJORITY``, the thesis' rule) or the Dawid-Skene estimate from the others' votes
(``DAWID_SKENE``). ``panel_test`` compares a model with a whole panel of annotators.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from scipy.stats import t as student_t

VOTE_COLUMNS = ["image", "annotator", "label"]
DEFAULT_N_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
MAJORITY = "majority"
DAWID_SKENE = "dawid-skene"
REFERENCES = (MAJORITY, DAWID_SKENE)

Votes = pd.DataFrame | Iterable[tuple[Hashable, Hashable, str]]


# --------------------------------------------------------------------------- votes


def as_votes(votes: Votes, labels: Sequence[str]) -> pd.DataFrame:
    """Validated votes as a DataFrame with columns image, annotator, label.

    Raises ValueError for a label outside ``labels`` or a second vote by the same
    annotator on the same image: either would silently change every figure.
    """
    _check_labels(labels)
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


def _check_labels(labels: Sequence[str]) -> None:
    if len(labels) == 0:
        raise ValueError("the label set is empty")
    if len(set(labels)) != len(labels):
        raise ValueError(f"the label set {list(labels)} repeats a label")


@dataclass(frozen=True)
class _Coded:
    """Votes as integer codes: the shared starting point of every count below."""

    images: np.ndarray  # sorted unique image ids
    annotators: np.ndarray  # sorted unique annotator ids
    image_idx: np.ndarray  # per vote
    annotator_idx: np.ndarray  # per vote
    label_idx: np.ndarray  # per vote
    counts: np.ndarray  # images x labels


def _code(frame: pd.DataFrame, labels: Sequence[str]) -> _Coded:
    images, image_idx = np.unique(frame["image"].to_numpy(dtype=object), return_inverse=True)
    annotators, annotator_idx = np.unique(
        frame["annotator"].to_numpy(dtype=object), return_inverse=True
    )
    label_pos = {label: i for i, label in enumerate(labels)}
    label_idx = np.array([label_pos[x] for x in frame["label"]], dtype=np.intp)
    counts = np.zeros((len(images), len(labels)), dtype=np.int64)
    np.add.at(counts, (image_idx, label_idx), 1)
    return _Coded(images, annotators, image_idx, annotator_idx, label_idx, counts)


def vote_counts(votes: Votes, labels: Sequence[str]) -> pd.DataFrame:
    """Votes per image (rows, sorted) and label (columns, in ``labels`` order)."""
    coded = _code(as_votes(votes, labels), labels)
    return pd.DataFrame(
        coded.counts, index=pd.Index(coded.images, name="image"), columns=list(labels)
    )


def _unique_top(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's top count, and whether that top is unique and non-zero."""
    top = counts.max(axis=1, initial=0)
    n_top = (counts == top[:, None]).sum(axis=1)
    return counts.argmax(axis=1), (n_top == 1) & (top > 0)


def vote_summary(votes: Votes, labels: Sequence[str]) -> dict:
    """Size of a vote set: images with at least one vote, annotators, votes, tied images."""
    coded = _code(as_votes(votes, labels), labels)
    return vote_summary_from_counts(coded.counts, len(coded.annotators))


def vote_summary_from_counts(counts: np.ndarray, n_annotators: int) -> dict:
    """``vote_summary`` from an images x labels table of vote counts (rows without a vote
    are not images with a vote) and the number of annotators."""
    counts = np.asarray(counts, dtype=np.int64)
    counts = counts[counts.sum(axis=1) > 0]
    _, has_majority = _unique_top(counts)
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
    coded = _code(as_votes(votes, labels), labels)
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


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class Agreement:
    """``n_matching`` of ``n_compared`` votes equal their reference; ``n_excluded`` had none."""

    n_matching: int
    n_compared: int
    n_excluded: int

    @property
    def accuracy(self) -> float:
        return self.n_matching / self.n_compared if self.n_compared else float("nan")


def agreement_accuracy(votes: Votes, labels: Sequence[str]) -> Agreement:
    """Thesis 7.2 form: over images with a majority, votes equal to it / all their votes.

    The voter's own vote counts, which inflates the figure (with 3 voters it cannot
    fall below 2/3); see ``loo_agreement``. Votes on tied images are ``n_excluded``.
    """
    return agreement_accuracy_from_counts(_code(as_votes(votes, labels), labels).counts)


def agreement_accuracy_from_counts(counts: np.ndarray) -> Agreement:
    """``agreement_accuracy`` from an images x labels table of vote counts."""
    counts = np.asarray(counts, dtype=np.int64)
    _, has_majority = _unique_top(counts)
    per_image = counts.sum(axis=1)
    return Agreement(
        n_matching=int(counts.max(axis=1, initial=0)[has_majority].sum()),
        n_compared=int(per_image[has_majority].sum()),
        n_excluded=int(per_image[~has_majority].sum()),
    )


def _loo_outcome(coded: _Coded) -> tuple[np.ndarray, np.ndarray]:
    """Per vote: whether the other votes on its image have a majority, and whether it matches."""
    others = coded.counts[coded.image_idx].copy()
    others[np.arange(len(others)), coded.label_idx] -= 1
    top, has_majority = _unique_top(others)
    return has_majority, has_majority & (top == coded.label_idx)


def loo_agreement(votes: Votes, labels: Sequence[str]) -> Agreement:
    """Leave-one-out form: each vote against the majority of the *other* votes on its image.

    A vote whose other votes tie, or that is the image's only vote, is ``n_excluded``.
    """
    return loo_agreement_from_counts(_code(as_votes(votes, labels), labels).counts)


def loo_agreement_from_counts(counts: np.ndarray) -> Agreement:
    """``loo_agreement`` from an images x labels table of vote counts.

    All of an image's votes for one label meet the same other votes (the image's counts
    less one of that label), so they are compared as one group.
    """
    counts = np.asarray(counts, dtype=np.int64)
    matching = compared = total = 0
    for label in range(counts.shape[1]):
        group = counts[:, label] > 0
        others = counts[group].copy()
        others[:, label] -= 1
        top, has_majority = _unique_top(others)
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
    coded = _code(as_votes(votes, labels), labels)
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


# --------------------------------------------------------------------------- held-out scoring


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
        top, has_majority = _unique_top(counts)
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
    return _majority_splits(_code(frame, labels), list(labels), names)


def _majority_splits(coded: _Coded, labels: list[str], names: list) -> dict[Hashable, HeldOut]:
    """``holdout_split`` against the majority for every annotator at once: an annotator's
    reference on an image is the image's counts less their own vote, so the votes are
    counted once, not once per annotator (a crowd study of 40 annotators: 40 times fewer)."""
    others = coded.counts[coded.image_idx].copy()
    others[np.arange(len(others)), coded.label_idx] -= 1
    top, has_majority = _unique_top(others)
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
    _check_labels(labels)
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


# ------------------------------------------------------------------ chance-corrected agreement


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


def fleiss_kappa(votes: Votes, labels: Sequence[str]) -> float:
    """Fleiss' kappa of all votes; see ``fleiss_kappa_from_counts`` for varying voters."""
    return fleiss_kappa_from_counts(vote_counts(votes, labels).to_numpy())


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


def krippendorff_alpha(votes: Votes, labels: Sequence[str]) -> float:
    """Krippendorff's alpha (nominal) of all votes; annotators may skip images."""
    return krippendorff_alpha_from_counts(vote_counts(votes, labels).to_numpy())


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


# --------------------------------------------------------------------------- uncertainty and tests


def _bootstrap_means(
    values: np.ndarray, n_resamples: int, seed: int | np.random.Generator, chunk: int = 256
) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement, same size) of ``values``.

    Resampled index sets depend only on ``seed`` and the number of values, so two
    vectors of the same length (human and model on one paired set) see the same resamples.
    """
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _percentile_interval(
    values: np.ndarray, n_resamples: int, confidence: float, seed: int | np.random.Generator
) -> tuple[float, float]:
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if len(values) == 0:
        return float("nan"), float("nan")
    means = _bootstrap_means(values, n_resamples, seed)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def bootstrap_ci(
    correct: Sequence[bool] | np.ndarray,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of an accuracy, resampling images with replacement.

    2000 resamples put the 2.5 % and 97.5 % quantiles within about 0.3 points of their
    limit for a few hundred images while taking milliseconds. (NaN, NaN) for no images.
    """
    return _percentile_interval(np.asarray(correct, dtype=float), n_resamples, confidence, seed)


def paired_bootstrap_ci(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(a) - accuracy(b) on the same images.

    Both are resampled together, image by image, which keeps the pairing: the interval
    is narrower than one read off two separate intervals when a and b err on the same images.
    """
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness vectors differ in length: {len(a)} vs {len(b)}")
    return _percentile_interval(a - b, n_resamples, confidence, seed)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: ``only_a`` images a got right and b wrong, ``only_b`` the reverse."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(
    correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray
) -> McNemar:
    """Exact (binomial) McNemar test of equal accuracy on paired images.

    Under the null hypothesis each discordant image is equally likely to favour a or
    b, so only_a ~ Binomial(only_a + only_b, 1/2); two-sided. p = 1 with no discordant image.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness vectors differ in length: {len(a)} vs {len(b)}")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue))


# ------------------------------------------------------------------ a model against a panel


@dataclass(frozen=True)
class PanelTest:
    """A model against a panel of readers: Obuchowski-Rockette-Hillis (``orh_model_vs_readers``).

    ``difference`` is the mean over readers of (model - reader); ``ci`` its interval,
    ``p_value`` the two-sided test of a zero difference, on ``df`` degrees of freedom.
    """

    difference: float
    se: float
    df: float
    t: float
    p_value: float
    ci: tuple[float, float]
    n_readers: int
    n_cases: int
    ms_reader: float  # variance of the per-reader differences across readers (ddof 1)
    cov2: float  # mean covariance of two readers' differences over cases (jackknife)


def orh_model_vs_readers(
    differences: Sequence[float] | np.ndarray,
    jackknife: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PanelTest:
    """Obuchowski-Rockette-Hillis test of one model against a panel of random readers.

    ``differences[j]`` is the model's figure of merit minus reader j's (here: accuracy on
    reader j's paired images against reader j's reference); ``jackknife[j, k]`` is the
    same difference with case k left out (the value itself where k is not among reader
    j's cases). Readers and cases are both treated as samples: the case covariances come
    from the jackknife, the reader variance from the spread of the differences, and the
    denominator degrees of freedom are Hillis' (2007). This is the single-modality
    "standalone model vs readers" form of Chakraborty (2017, Observer Performance
    Methods for Diagnostic Imaging, ch. 22), as in Google Health's ``reader_study.
    model_vs_readers_orh``, which was checked against RJafroc:

        cov = (n - 1) / n * sum_k (d_jk - mean_k d_j.)(d_j'k - mean_k d_j'.)
        cov2 = mean of cov over reader pairs j != j';  ms = var_j(d_j) (ddof 1)
        se = sqrt((ms + max(J cov2, 0)) / J);  df = (J - 1) ((ms + max(J cov2, 0)) / ms)^2
        t = mean_j d_j / se, two-sided p from Student's t(df); CI: mean +- t_(1-a/2, df) se

    Needs at least two readers and two cases; otherwise (and when the differences
    carry no variance at all) the interval and p-value are NaN.
    """
    _check_confidence(confidence)
    d = np.asarray(differences, dtype=float)
    jack = np.asarray(jackknife, dtype=float)
    if jack.ndim != 2 or jack.shape[0] != len(d):
        raise ValueError(
            f"jackknife must be readers x cases with {len(d)} rows, got shape {jack.shape}"
        )
    n_readers, n_cases = jack.shape
    difference = float(d.mean()) if n_readers else float("nan")
    nan = float("nan")
    if n_readers < 2 or n_cases < 2:
        return PanelTest(difference, nan, nan, nan, nan, (nan, nan), n_readers, n_cases, nan, nan)
    centred = jack - jack.mean(axis=1, keepdims=True)
    cov = (n_cases - 1) / n_cases * (centred @ centred.T)
    cov2 = float(cov[np.triu_indices(n_readers, k=1)].mean())
    ms_reader = float(d.var(ddof=1))
    denominator = ms_reader + max(n_readers * cov2, 0.0)
    se = float(np.sqrt(denominator / n_readers))
    if se == 0:
        return PanelTest(difference, 0.0, nan, nan, nan, (nan, nan), n_readers, n_cases,
                         ms_reader, cov2)
    df = (n_readers - 1) * (denominator / ms_reader) ** 2 if ms_reader > 0 else float("inf")
    t = difference / se
    p_value = float(2 * student_t.sf(abs(t), df))
    half = float(student_t.ppf(0.5 + confidence / 2, df)) * se
    return PanelTest(difference, se, float(df), float(t), p_value,
                     (difference - half, difference + half), n_readers, n_cases, ms_reader, cov2)


def accuracy_jackknife(
    correct: np.ndarray, paired: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of each reader on their own cases, and each one with case k left out.

    ``correct`` and ``paired`` are readers x cases; ``paired[j, k]`` says whether case k
    is among reader j's paired cases, ``correct[j, k]`` whether the answer on it was
    right (ignored where not paired). Returns (accuracy per reader, readers x cases
    accuracy with case k left out: (right_j - correct_jk) / (n_j - 1) where k is reader
    j's, their full accuracy where it is not). Every reader needs two cases or more.
    """
    paired = np.asarray(paired, dtype=bool)
    right = np.where(paired, np.asarray(correct, dtype=float), 0.0)
    n = paired.sum(axis=1)
    if (n < 2).any():
        raise ValueError("every reader needs at least two paired cases for the jackknife")
    n_right = right.sum(axis=1)
    accuracy = n_right / n
    left_out = (n_right[:, None] - right) / (n[:, None] - 1)
    return accuracy, np.where(paired, left_out, accuracy[:, None])


def panel_test(
    human_correct: np.ndarray,
    model_correct: np.ndarray,
    paired: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PanelTest:
    """A model against a panel of annotators on accuracy (``orh_model_vs_readers``).

    Rows are annotators, columns the union of their paired images. Row j holds, on
    annotator j's paired images, whether annotator j (``human_correct``) and the model
    (``model_correct``) matched annotator j's reference. The difference is the mean over
    annotators of (model accuracy - annotator accuracy), each on that annotator's images.
    """
    human_acc, human_jack = accuracy_jackknife(human_correct, paired)
    model_acc, model_jack = accuracy_jackknife(model_correct, paired)
    return orh_model_vs_readers(model_acc - human_acc, model_jack - human_jack, confidence)


# ------------------------------------------------------------------ non-inferiority


@dataclass(frozen=True)
class NonInferiority:
    """The one-sided test that the model is not worse than people by more than ``margin``:
    H0 difference <= -margin against H1 difference > -margin (difference = model - human).
    ``lower_bound`` is the one-sided (1 - alpha) confidence bound the test rests on: the
    model is non-inferior at ``alpha`` exactly when it lies above -margin."""

    margin: float
    alpha: float
    difference: float
    lower_bound: float
    t: float
    df: float
    p_value: float

    @property
    def non_inferior(self) -> bool:
        return bool(self.p_value < self.alpha)


def _check_margin(margin: float, alpha: float) -> None:
    if not margin >= 0:
        raise ValueError(f"the non-inferiority margin must be 0 or more, got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def noninferiority_paired(model_correct: np.ndarray, human_correct: np.ndarray, margin: float,
                          alpha: float = 0.05) -> NonInferiority:
    """Non-inferiority of a model to one annotator on the same images: a one-sided paired t
    test of the per-image differences (model right - annotator right, each -1, 0 or 1)
    against -margin (statsmodels' ``DescrStatsW.ttest_mean``)."""
    from statsmodels.stats.weightstats import DescrStatsW

    _check_margin(margin, alpha)
    d = np.asarray(model_correct, dtype=float) - np.asarray(human_correct, dtype=float)
    nan = float("nan")
    if len(d) < 2:
        return NonInferiority(margin, alpha, float(d.mean()) if len(d) else nan, nan, nan, nan, nan)
    stats = DescrStatsW(d)
    if stats.std == 0:  # every image the same difference: no spread to test with
        p = 0.0 if d[0] > -margin else 1.0
        return NonInferiority(margin, alpha, float(d.mean()), float(d.mean()), nan, float(len(d) - 1), p)
    t, p, df = stats.ttest_mean(value=-margin, alternative="larger")
    lower = stats.tconfint_mean(alpha=2 * alpha)[0]
    return NonInferiority(margin, alpha, float(d.mean()), float(lower), float(t), float(df), float(p))


def noninferiority_panel(test: PanelTest, margin: float, alpha: float = 0.05) -> NonInferiority:
    """Non-inferiority of a model to a panel: the panel test's own standard error and Hillis
    degrees of freedom, one-sided: t = (difference + margin) / se."""
    _check_margin(margin, alpha)
    nan = float("nan")
    if not (test.se > 0 and np.isfinite(test.df)):
        return NonInferiority(margin, alpha, test.difference, nan, nan, test.df, nan)
    t = (test.difference + margin) / test.se
    p = float(student_t.sf(t, test.df))
    lower = test.difference - float(student_t.ppf(1 - alpha, test.df)) * test.se
    return NonInferiority(margin, alpha, test.difference, lower, float(t), test.df, p)


def paired_difference_interval(model_correct: np.ndarray, human_correct: np.ndarray,
                               confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """A t interval of the mean per-image difference (model - annotator) on one annotator's
    paired images: the forest plot's row for that annotator."""
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.asarray(model_correct, dtype=float) - np.asarray(human_correct, dtype=float)
    if len(d) < 2 or np.std(d) == 0:
        return (float(d.mean()), float(d.mean())) if len(d) else (float("nan"), float("nan"))
    lo, hi = DescrStatsW(d).tconfint_mean(alpha=1 - confidence)
    return float(lo), float(hi)


# ------------------------------------------------------------------ Dawid-Skene


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
    coded = _code(as_votes(votes, labels), labels)
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
