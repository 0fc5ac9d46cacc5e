"""FER+ crowd votes as a study: one binned label per (image, tagger).

FER+ (``fer2013new.csv``) gives, per FER2013 row, how many of 10 crowd taggers chose
each emotion. The demo study and the benchmark tests need those votes as individual
annotators' votes: each image's 10 votes are expanded, shuffled and handed to annotators
a01..a10 in that order, then binned (SPEC, thesis Table 7); "unknown" and "not a face"
votes are dropped, so an annotator occasionally has no vote on an image. The shuffle is seeded per image from
``(seed, row)``, so a row gets the same votes whether it is read from the full file or
from a sample of it, and no annotator inherits the column order of the file.

``ferml.data`` reads the same file to relabel FER2013 for training (``read_ferplus_votes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .data import FERPLUS_COLUMNS
from .labels import LABEL_SETS, VOTE_LABEL_SETS, map_label

FERPLUS_DROPPED = ["unknown", "NF"]  # not an expression: no vote

DEFAULT_IMAGE_KEY = "row-{row:05d}"


def ferplus_labels(label_set: str = "bin3") -> list[str]:
    """The ordered labels of a label set that votes can be given in (``VOTE_LABEL_SETS``)."""
    if label_set not in VOTE_LABEL_SETS:
        raise ValueError(
            f"unknown label set {label_set!r}; choose one of {', '.join(VOTE_LABEL_SETS)}"
        )
    return list(LABEL_SETS[label_set])


def read_ferplus(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """FER+ vote lines with a ``row`` column (the FER2013 row number).

    The original file has no ``row`` column: its line position is the row (see the
    data README), so one is added from the position when absent.
    """
    frame = source.copy() if isinstance(source, pd.DataFrame) else pd.read_csv(source)
    missing = [c for c in ["Usage", *FERPLUS_COLUMNS, *FERPLUS_DROPPED] if c not in frame.columns]
    if missing:
        raise ValueError(f"not a FER+ vote file: column(s) {', '.join(missing)} missing")
    if "row" not in frame.columns:
        frame.insert(0, "row", np.arange(len(frame)))
    return frame


def ferplus_votes(
    source: str | Path | pd.DataFrame,
    label_set: str = "bin3",
    seed: int = 0,
    usage: str | Iterable[str] | None = None,
    image_key: str | Callable[[int], str] = DEFAULT_IMAGE_KEY,
) -> pd.DataFrame:
    """Votes (columns image, annotator, label) of the FER+ taggers, binned to ``label_set``.

    ``usage`` keeps only rows of that FER2013 split ("PublicTest", ...). ``image_key``
    names an image from its row number: a format string with field ``row`` or a function.
    Rows with no vote left (all unknown or not a face) contribute no image.
    """
    ferplus_labels(label_set)  # raises, naming the known sets
    frame = read_ferplus(source)
    if usage is not None:
        wanted = [usage] if isinstance(usage, str) else list(usage)
        frame = frame[frame["Usage"].isin(wanted)]
    name_of = image_key if callable(image_key) else (lambda row: image_key.format(row=row))
    # unknown and not-a-face become None: they are shuffled with the real votes and only
    # then dropped, so every annotator misses some images, not just the last ones
    bins = [map_label(emotion, label_set) for emotion in FERPLUS_COLUMNS]
    binned = np.array(bins + [None] * len(FERPLUS_DROPPED), dtype=object)
    counts = frame[FERPLUS_COLUMNS + FERPLUS_DROPPED].to_numpy(dtype=np.int64)
    records = []
    for row, row_counts in zip(frame["row"].to_numpy(), counts):
        labels = np.repeat(binned, row_counts)
        labels = np.random.default_rng([seed, int(row)]).permutation(labels)
        image = name_of(int(row))
        records.extend((image, f"a{i + 1:02d}", label) for i, label in enumerate(labels) if label is not None)
    return pd.DataFrame.from_records(records, columns=["image", "annotator", "label"])
