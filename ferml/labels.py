"""Label sets and binning (thesis 7.1.5, Table 7).

Every label has one canonical name. A label set is an ordered list of class names;
``map_label`` sends any canonical emotion or bin name into a target set (``None``
means the image is dropped, as surprise is in ``bin3-nosurprise``).
"""
from __future__ import annotations

import numpy as np

FER7 = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # Kaggle codes 0-6
AFFECT8 = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"]  # AffectNet codes 0-7
BIN3 = ["negative", "neutral", "positive"]
POS2 = ["non-positive", "positive"]

LABEL_SETS: dict[str, list[str]] = {
    "fer7": FER7,
    "affect8": AFFECT8,
    "bin3": BIN3,
    "bin3-nosurprise": BIN3,
    "pos2": POS2,
}
# The sets of bins (thesis Table 7): a 7- or 8-class model is scored or shown in them by
# summing its probabilities inside each bin.
BIN_SETS = ("bin3", "bin3-nosurprise", "pos2")
# The sets a human vote can be given in: an annotator votes bin3, and pos2 merges two of its bins.
VOTE_LABEL_SETS = ("bin3", "pos2")

# Other spellings found in folder names, FER+ columns and AffectNet docs.
SYNONYMS = {
    "anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
    "disgusted": "disgust", "fearful": "fear", "scared": "fear", "joy": "happy",
    "nonpositive": "non-positive", "non_positive": "non-positive", "not-positive": "non-positive",
}

_BIN3_OF = {
    "happy": "positive",
    "neutral": "neutral", "surprise": "neutral",
    "angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative", "contempt": "negative",
    "negative": "negative", "positive": "positive",
}


class LabelError(ValueError):
    pass


def canonical(name: str) -> str:
    key = name.strip().lower()
    return SYNONYMS.get(key, key)


def check_label_set(name: str) -> list[str]:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise LabelError(f"unknown label set {name!r}; choose one of {', '.join(LABEL_SETS)}") from None


def map_label(name: str, target: str) -> str | None:
    """The class of ``name`` in label set ``target``; None if the set drops it.

    Raises LabelError when ``name`` cannot be expressed in ``target`` (e.g. a bin3
    'negative' image asked for as fer7).
    """
    classes = check_label_set(target)
    label = canonical(name)
    if target in ("fer7", "affect8"):
        if label in classes:
            return label
        raise LabelError(f"label {name!r} is not one of the {target} classes ({', '.join(classes)})")
    if target == "bin3-nosurprise" and label == "surprise":
        return None
    if target == "pos2":
        if label in POS2:
            return label
        binned = _BIN3_OF.get(label)
        if binned is None:
            raise LabelError(f"label {name!r} cannot be binned to pos2")
        return "positive" if binned == "positive" else "non-positive"
    binned = _BIN3_OF.get(label)
    if binned is None:
        raise LabelError(f"label {name!r} cannot be binned to {target}")
    return binned


def binning_matrix(source_classes: list[str], target: str) -> np.ndarray:
    """0/1 matrix (source x target) that sums a model's softmax mass inside each bin.

    This is retroactive binning (thesis Fig. 18): a 7- or 8-class model scored on
    bin3 or pos2. A source class that the target drops (surprise in bin3-nosurprise)
    contributes to no bin.
    """
    target_classes = check_label_set(target)
    matrix = np.zeros((len(source_classes), len(target_classes)), dtype=np.float32)
    for i, name in enumerate(source_classes):
        mapped = map_label(name, target)
        if mapped is not None:
            matrix[i, target_classes.index(mapped)] = 1.0
    return matrix
