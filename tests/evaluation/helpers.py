"""A FER+ study on disk, and the benchmark figures recomputed from scratch to check against.

The independent figures below use plain Counters and loops over the votes, the
``krippendorff`` package and scipy, never ``evaluation.metrics``.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from django.core.management import call_command
from PIL import Image as PILImage
from scipy.stats import binomtest

from ferml.ferplus import ferplus_votes

BIN3 = ["negative", "neutral", "positive"]
IMAGE_KEY = "row-{row:05d}.png"


@dataclass
class Study:
    images: Path  # folder of row-XXXXX.png
    votes_csv: Path
    votes: pd.DataFrame  # image, annotator, label of the written images only


def write_study(
    folder: Path, fer_csv: Path, ferplus_csv: Path, usage="PublicTest", seed=0, limit=None
) -> Study:
    """The faces of one FER2013 split (the first ``limit`` of them) as PNGs, and their
    FER+ votes (binned to bin3) as a csv.

    FER2013 repeats a few faces under different rows; a test set keeps one image per
    content, so only the first row of each repeated face is written (and voted on).
    """
    faces = pd.read_csv(fer_csv, usecols=["pixels", "Usage", "row"])
    faces = faces[faces["Usage"] == usage].drop_duplicates("pixels").head(limit)
    images = folder / "images"
    images.mkdir(parents=True)
    for row, pixels in zip(faces["row"], faces["pixels"]):
        array = np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)
        PILImage.fromarray(array).save(images / IMAGE_KEY.format(row=row))
    votes = ferplus_votes(ferplus_csv, "bin3", seed=seed, usage=usage, image_key=IMAGE_KEY)
    votes = votes[votes["image"].isin({IMAGE_KEY.format(row=r) for r in faces["row"]})]
    votes_csv = folder / "votes.csv"
    votes.to_csv(votes_csv, index=False)
    return Study(images, votes_csv, votes.reset_index(drop=True))


def run_command(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def read_gray(path: Path) -> np.ndarray:
    with PILImage.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8)


# --------------------------------------------------------------------------- independent figures


def unique_top(counter: Counter) -> str | None:
    ranked = counter.most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def labels_by_image(votes: pd.DataFrame) -> dict[str, dict[str, str]]:
    """image -> {annotator: label}."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for image, annotator, label in votes[["image", "annotator", "label"]].itertuples(index=False):
        out[image][annotator] = label
    return out


def agreement_accuracy(votes) -> float:
    matching = compared = 0
    for by_annotator in labels_by_image(votes).values():
        counts = Counter(by_annotator.values())
        top = unique_top(counts)
        if top is not None:
            matching += counts[top]
            compared += sum(counts.values())
    return matching / compared


def loo_by_annotator(votes) -> dict[str, tuple[int, int]]:
    """annotator -> (votes equal to the majority of the other votes, votes compared)."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for by_annotator in labels_by_image(votes).values():
        for annotator, label in by_annotator.items():
            tally[annotator]  # an annotator with no comparable vote still appears
            others = Counter(lab for who, lab in by_annotator.items() if who != annotator)
            top = unique_top(others)
            if top is not None:
                tally[annotator][0] += label == top
                tally[annotator][1] += 1
    return {name: (m, n) for name, (m, n) in sorted(tally.items())}


def loo_accuracy(votes) -> float:
    per = loo_by_annotator(votes).values()
    return sum(m for m, _ in per) / sum(n for _, n in per)


def median_annotator(votes) -> str:
    """Thesis 9.6: the annotator with the median leave-one-out agreement (lower median)."""
    ranked = sorted((m / n, name) for name, (m, n) in loo_by_annotator(votes).items() if n)
    return ranked[(len(ranked) - 1) // 2][1]


def fleiss_kappa(votes, labels=BIN3) -> float:
    """Fleiss' kappa for a varying number of raters per image.

    The generalisation of Gwet (2014), as in irrCAC's ``fleiss.kappa.raw``.
    """
    agreeing, shares = [], []
    for by_annotator in labels_by_image(votes).values():
        counts = Counter(by_annotator.values())
        n = sum(counts.values())
        shares.append([counts[label] / n for label in labels])
        if n >= 2:
            agreeing.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
    p_observed = sum(agreeing) / len(agreeing)
    p_chance = sum(share**2 for share in np.mean(shares, axis=0))
    return (p_observed - p_chance) / (1 - p_chance)


def krippendorff_alpha(votes, labels=BIN3) -> float:
    annotators = sorted(votes["annotator"].unique())
    images = sorted(votes["image"].unique())
    matrix = np.full((len(annotators), len(images)), np.nan)
    a_index = {a: i for i, a in enumerate(annotators)}
    i_index = {img: j for j, img in enumerate(images)}
    for image, annotator, label in votes[["image", "annotator", "label"]].itertuples(index=False):
        matrix[a_index[annotator], i_index[image]] = labels.index(label)
    return krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")


def paired_set(votes, holdout) -> tuple[dict, dict, int]:
    """(image -> others' majority, image -> holdout's label, images left out as ties)."""
    reference, human, ties = {}, {}, 0
    for image, by_annotator in labels_by_image(votes).items():
        if holdout not in by_annotator:
            continue
        others = Counter(lab for who, lab in by_annotator.items() if who != holdout)
        top = unique_top(others)
        if top is None:
            ties += bool(others)
            continue
        reference[image], human[image] = top, by_annotator[holdout]
    return reference, human, ties


def accuracy(predictions: dict, reference: dict) -> float:
    return sum(predictions[img] == ref for img, ref in reference.items()) / len(reference)


def mcnemar_p(human: dict, model: dict, reference: dict) -> float:
    only_human = sum(human[i] == r and model[i] != r for i, r in reference.items())
    only_model = sum(human[i] != r and model[i] == r for i, r in reference.items())
    if only_human + only_model == 0:
        return 1.0
    return binomtest(only_human, only_human + only_model, 0.5).pvalue


def predicted_labels(predictor, faces, label_set: str) -> list[str]:
    """A model's label for each face (the class of highest probability in ``label_set``)."""
    from ferml.labels import check_label_set

    return [check_label_set(label_set)[i] for i in predictor.predict_proba(faces, label_set).argmax(1)]


def counted(figure, votes, labels):
    """A figure of ``evaluation.metrics`` that works on vote counts, of these votes."""
    from evaluation import vote_tables

    return figure(vote_tables.vote_counts(votes, labels).to_numpy())
