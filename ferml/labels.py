"""Label sets, label schemes and binning (thesis 7.1.5, Table 7).

Every label has one canonical name. A label set is an ordered list of class names;
``map_label`` sends any canonical emotion or bin name into a target set (``None``
means the image is dropped, as surprise is in ``bin3-nosurprise``). A target is a label
set's name or, for a study's own list of labels, the list itself.

A label scheme is what the annotators of a study vote in: ``bin3``, ``fer7``, ``affect8``
or a custom ordered list of names, plus optional extra answers ("unsure", "not a face",
FER+'s "unknown" and "NF") that are stored as votes but count in no majority.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

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

# The label schemes a study may vote in, beside a custom list (CUSTOM_SCHEME).
SCHEMES = ("bin3", "fer7", "affect8")
CUSTOM_SCHEME = "custom"
# Answers beside the labels: votes that no majority or accuracy counts (FER+'s unknown, NF).
UNSURE = "unsure"
NOT_A_FACE = "not-a-face"
EXTRA_ANSWERS = (UNSURE, NOT_A_FACE)
# Keys 1..9 choose a label on the labelling page, so a scheme has at most nine.
MAX_SCHEME_LABELS = 9
MAX_LABEL_LENGTH = 40
_LABEL_NAME = re.compile(r"^[a-z][a-z0-9 _-]*$")

# Other spellings found in folder names, FER+ columns and AffectNet docs.
SYNONYMS = {
    "anger": "angry", "happiness": "happy", "sadness": "sad", "surprised": "surprise",
    "disgusted": "disgust", "fearful": "fear", "scared": "fear", "joy": "happy",
    "nonpositive": "non-positive", "non_positive": "non-positive", "not-positive": "non-positive",
    "unknown": UNSURE, "not sure": UNSURE, "nf": NOT_A_FACE, "not a face": NOT_A_FACE,
    "not_a_face": NOT_A_FACE, "notaface": NOT_A_FACE, "no face": NOT_A_FACE,
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


def map_label(name: str, target: str | Sequence[str]) -> str | None:
    """The class of ``name`` in ``target`` (a label set's name, or a list of class names);
    None if the set drops it.

    Raises LabelError when ``name`` cannot be expressed in ``target`` (e.g. a bin3
    'negative' image asked for as fer7).
    """
    if not isinstance(target, str):
        label = canonical(name)
        if label in target:
            return label
        raise LabelError(f"label {name!r} is not one of the labels {', '.join(target)}")
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


def target_classes(target: str | Sequence[str]) -> list[str]:
    """The ordered classes of a target: a label set's, or the list itself."""
    return check_label_set(target) if isinstance(target, str) else list(target)


def binning_matrix(source_classes: list[str], target: str | Sequence[str]) -> np.ndarray:
    """0/1 matrix (source x target) that sums a model's softmax mass inside each bin.

    This is retroactive binning (thesis Fig. 18): a 7- or 8-class model scored on
    bin3 or pos2. A source class that the target drops (surprise in bin3-nosurprise)
    contributes to no bin.
    """
    classes = target_classes(target)
    matrix = np.zeros((len(source_classes), len(classes)), dtype=np.float32)
    for i, name in enumerate(source_classes):
        mapped = map_label(name, target)
        if mapped is not None:
            matrix[i, classes.index(mapped)] = 1.0
    return matrix


# --------------------------------------------------------------------------- schemes


def check_custom_labels(names: Sequence[str]) -> list[str]:
    """A study's own ordered labels, canonical: two to nine distinct names of letters,
    digits, spaces, hyphens or underscores, none of them an extra answer."""
    labels = [canonical(str(n)) for n in names if str(n).strip()]
    if not 2 <= len(labels) <= MAX_SCHEME_LABELS:
        raise LabelError(f"a custom label list needs 2 to {MAX_SCHEME_LABELS} labels (keys 1 to 9); "
                         f"got {len(labels)}")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH or not _LABEL_NAME.match(label):
            raise LabelError(f"label {label[:MAX_LABEL_LENGTH]!r} must start with a letter and hold only "
                             f"letters, digits, spaces, - and _ (at most {MAX_LABEL_LENGTH} characters)")
        if label in EXTRA_ANSWERS:
            raise LabelError(f"{label!r} is an extra answer, not a label; switch it on as an extra instead")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise LabelError(f"the custom labels repeat {', '.join(repeated)}")
    return labels


def scheme_labels(scheme: str, custom: Sequence[str] = ()) -> list[str]:
    """The ordered labels a study votes in: a scheme's, or its custom list."""
    if scheme == CUSTOM_SCHEME:
        return check_custom_labels(custom)
    if scheme not in SCHEMES:
        raise LabelError(f"unknown label scheme {scheme!r}; choose one of "
                         f"{', '.join((*SCHEMES, CUSTOM_SCHEME))}")
    return list(LABEL_SETS[scheme])


def check_extra_answers(names: Sequence[str]) -> list[str]:
    """Extra answers in their canonical spelling and order."""
    wanted = {canonical(str(n)) for n in names if str(n).strip()}
    unknown = sorted(wanted - set(EXTRA_ANSWERS))
    if unknown:
        raise LabelError(f"unknown extra answer(s) {', '.join(unknown)}; choose from {', '.join(EXTRA_ANSWERS)}")
    return [name for name in EXTRA_ANSWERS if name in wanted]


def scheme_targets(labels: Sequence[str]) -> list[str]:
    """The bin sets (bin3, pos2) that every label of a scheme maps into: the label sets a
    study's votes can also be scored in, binned after they were cast."""
    targets = []
    for target in VOTE_LABEL_SETS:
        try:
            if all(map_label(label, target) is not None for label in labels):
                targets.append(target)
        except LabelError:
            continue
    return targets
