"""Predictions made elsewhere: a model that ran outside this project, as a csv file.

A researcher's model (a commercial API, a network in another framework) meets the
annotators through its answers on the test set's images, keyed by the image key that
``export_testset`` writes:

- ``image,label``: one label per image, in the labels scored or any label that maps into
  them (an emotion is binned to bin3 as a model's probabilities are);
- ``image,<class>,<class>,...``: one probability column per class (any spelling
  ``ferml.labels`` knows), each row summing to 1; the probabilities are summed into the
  scored labels' bins and the most probable bin is the answer.

Pure: no Django. The file is checked whole before anything is scored: an unknown image
key, a label or class that cannot be scored, a probability that is not a number in [0, 1]
or a row that does not sum to 1, and every image of the benchmark the file leaves out are
named with their row, and nothing of the file is used.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ferml.labels import LabelError, binning_matrix, canonical, map_label

SUM_TOLERANCE = 1e-3
MAX_LISTED = 10


class PredictionFileError(ValueError):
    """A prediction file that cannot be scored; the message names the file and its rows."""


@dataclass(frozen=True)
class PredictionFile:
    name: str  # what the report calls the model
    source: str  # the file's name
    labels: dict[str, str]  # image key -> answer in the scored labels
    kind: str  # "labels" or "probabilities"
    classes: list[str]  # the file's own classes (probability columns), or the labels it used


def _shown(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value):,} characters)"


def read_prediction_file(data: bytes, name: str, source: str, known_keys: Iterable[str],
                         needed_keys: Iterable[str], target: str | Sequence[str],
                         target_labels: Sequence[str]) -> PredictionFile:
    """The answers of a prediction file in ``target_labels`` (``target`` as ``ferml.labels``
    names it), checked against the test set's image keys and the images the benchmark needs."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PredictionFileError(f"{source} is not UTF-8 text; save it as UTF-8 csv.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not header or header[0].lower() != "image" or len(header) < 2:
        raise PredictionFileError(f"{source}: the first line must be image,label or image followed by one "
                                  "probability column per class.")
    known, problems, answers = set(known_keys), [], {}
    if len(header) == 2 and header[1].lower() == "label":
        kind, classes, matrix = "labels", list(target_labels), None
    else:
        kind, classes = "probabilities", [canonical(h) for h in header[1:]]
        repeated = sorted({c for c in classes if classes.count(c) > 1})
        if repeated:
            raise PredictionFileError(f"{source}: the class column(s) {', '.join(repeated)} appear twice.")
        try:
            matrix = binning_matrix(classes, target)
        except LabelError as exc:
            raise PredictionFileError(f"{source}: its classes ({', '.join(classes)}) cannot be scored in "
                                      f"{', '.join(target_labels)}: {exc}.") from None
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(f"row {line}: {len(fields)} field(s), but the header has {len(header)}")
            continue
        key = fields[0].strip()
        if key not in known:
            problems.append(f"row {line}: image {_shown(key)!r} is not in the test set")
            continue
        if key in answers:
            problems.append(f"row {line}: image {key!r} is given a second time")
            continue
        if kind == "labels":
            try:
                answer = map_label(fields[1], target)
            except LabelError:
                answer = None
            if answer is None:
                problems.append(f"row {line}: label {_shown(fields[1].strip())!r} cannot be scored "
                                f"(use {', '.join(target_labels)})")
                continue
            answers[key] = answer
            continue
        try:
            row = np.array([float(f) for f in fields[1:]])
        except ValueError:
            problems.append(f"row {line}: a probability is not a number")
            continue
        if not np.all(np.isfinite(row)) or (row < 0).any() or (row > 1).any():
            problems.append(f"row {line}: a probability is outside 0 to 1")
            continue
        if abs(row.sum() - 1) > SUM_TOLERANCE:
            problems.append(f"row {line}: the probabilities sum to {row.sum():.4f}, not 1")
            continue
        answers[key] = target_labels[int(np.argmax(row @ matrix))]
    missing = sorted(set(needed_keys) - set(answers))
    if missing:
        listed = ", ".join(repr(k) for k in missing[:MAX_LISTED])
        more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        problems.append(f"{len(missing)} image(s) the benchmark scores have no row: {listed}{more}")
    if problems:
        listed = "".join(f"\n  {p}" for p in problems[:MAX_LISTED + 1])
        more = f"\n  ... and {len(problems) - MAX_LISTED - 1} more" if len(problems) > MAX_LISTED + 1 else ""
        raise PredictionFileError(f"{source} has {len(problems)} problem(s); nothing of it was scored:{listed}{more}")
    return PredictionFile(name, source, answers, kind, classes)
