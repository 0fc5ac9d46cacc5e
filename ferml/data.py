"""Readers for the data sets the thesis trains and tests on (thesis 6.1).

Every reader yields a ``RawSet``: decoded images, canonical label names and a key per
image. ``load_dataset`` picks the reader from the path, maps labels into a label set,
resizes to the model's input size and returns an ``ImageSet`` of uint8 arrays.

Formats:
- FER2013 csv (Kaggle columns ``emotion,pixels,Usage``; plain or ``.gz``), optionally
  relabelled by FER+ votes (``fer2013new.csv``), joined by a ``row`` column or by line
  order, never by FER+'s ``Image name`` (those names drift from the row index).
- Any class-per-folder image tree, as a folder or a ``.zip`` (e.g. an exported test
  set: ``negative/ neutral/ positive/``; a ``tie/`` folder is ignored and counted).
  FER2013 packed by ``ferml.pack`` (images named ``row-NNNNN``) keeps its FER2013 keys
  and can be relabelled by FER+ votes as the csv can.
- AffectNet: its csv of labels and face boxes plus the image folder.
"""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from .labels import AFFECT8, FER7, LabelError, canonical, check_label_set, map_label

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
FERPLUS_MODES = ("majority", "plurality", "bins")
KNOWN_NAMES = set(FER7) | set(AFFECT8) | {"negative", "positive", "non-positive"}
IGNORED_FOLDERS = {"tie", "ties", "unknown", "__macosx"}
MAX_IMAGE_PIXELS = 40_000_000
PACKED_NAME = re.compile(r"row-(\d+)")

SPLIT_ALIASES = {
    "train": "Training", "training": "Training",
    "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest", "publictest": "PublicTest",
    "test": "PrivateTest", "privatetest": "PrivateTest",
}
# Folder trees and AffectNet name their splits differently from the FER2013 Usage column.
FOLDER_SPLITS = {
    "Training": ("train", "training"),
    "PublicTest": ("val", "valid", "validation", "publictest"),
    "PrivateTest": ("test", "privatetest"),
}
AFFECTNET_SPLIT_FILES = {"Training": "training.csv", "PublicTest": "validation.csv"}


class DataError(ValueError):
    """Bad input data; the message names the file, the row and the problem."""


class MissingSplitError(DataError):
    """The data has no such split (no Usage column, no split folder)."""


@dataclass
class RawSet:
    images: list[np.ndarray]
    names: list[str]
    keys: list[str]
    source: Path
    skipped: Counter = field(default_factory=Counter)
    votes: list[np.ndarray] | None = None  # FER+ emotion vote counts per image, when relabelled

    def subset(self, index) -> "RawSet":
        return RawSet([self.images[i] for i in index], [self.names[i] for i in index],
                      [self.keys[i] for i in index], self.source, Counter(self.skipped),
                      None if self.votes is None else [self.votes[i] for i in index])


@dataclass
class ImageSet:
    images: np.ndarray  # uint8, (N, C, S, S)
    labels: np.ndarray  # int64 class indices into ``classes``
    classes: list[str]
    label_set: str
    keys: list[str]
    source: Path
    skipped: Counter = field(default_factory=Counter)
    # float32 (N, len(classes)): each image's crowd vote distribution, for soft-target training
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.label_set,
                        [self.keys[i] for i in index], self.source, self.skipped,
                        None if self.targets is None else self.targets[index])


def normalize_split(split: str | None) -> str | None:
    if split is None:
        return None
    key = split.strip().lower()
    if key not in SPLIT_ALIASES:
        raise DataError(f"unknown split {split!r}; use train, val or test (Training, PublicTest, PrivateTest)")
    return SPLIT_ALIASES[key]


def draw_mask(keys: list[str], seed: int, fraction: float) -> np.ndarray:
    """Which training images a seeded validation draw takes: those whose key hashes (with the
    seed) below ``fraction``. It depends on nothing but the key, so the same images are drawn
    whatever else is loaded or filtered, and a checkpoint's drawn validation images can be
    scored again later from its seed and fraction. At least one image is taken."""
    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction must be between 0 and 1, got {fraction}")
    values = np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")
                       for key in keys], dtype=np.float64) / 2.0 ** 64
    mask = values < fraction
    if len(keys) and not mask.any():
        mask[int(values.argmin())] = True
    return mask


# ---------------------------------------------------------------- FER2013 and FER+


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text csv ({exc.reason})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read as csv ({exc})") from None


def _require_columns(df: pd.DataFrame, path: Path, columns) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")


def _parse_pixels(text, where: str) -> np.ndarray:
    try:
        values = np.array(str(text).split(), dtype=np.int32)
    except ValueError:
        raise DataError(f"{where}: pixels are not whole numbers") from None
    side = int(round(np.sqrt(values.size)))
    if values.size != 2304 and (side * side != values.size or side < 8):
        raise DataError(f"{where}: {values.size} pixel values, expected 2304 (48x48) or another square count")
    if values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise DataError(f"{where}: pixel values outside 0-255")
    return values.astype(np.uint8).reshape(side, side)


def read_fer2013(path, split=None, skip_bad=False, ferplus=None) -> RawSet:
    path = Path(path)
    usage = normalize_split(split)
    df = _read_csv(path, dtype={"pixels": str})
    _require_columns(df, path, ["emotion", "pixels"])
    if "row" not in df.columns:
        df["row"] = np.arange(len(df))
    df["line"] = np.arange(len(df)) + 2  # header is line 1
    if usage is not None:
        if "Usage" not in df.columns:
            raise MissingSplitError(f"{path}: no Usage column, so split {split!r} cannot be chosen")
        df = df[df["Usage"] == usage]
        if df.empty:
            raise MissingSplitError(f"{path}: no rows with Usage {usage}")
    raw = RawSet([], [], [], path)
    rows = []
    for emotion, pixels, row, line in df[["emotion", "pixels", "row", "line"]].itertuples(index=False):
        where = f"{path.name} line {line} (row {row})"
        try:
            image = _parse_pixels(pixels, where)
            # relabelled by FER+, the label comes from the votes (prepare)
            name = "neutral" if ferplus is not None else _fer7_name(emotion, where)
        except DataError:
            if not skip_bad:
                raise
            raw.skipped["malformed row"] += 1
            continue
        raw.images.append(image)
        raw.names.append(name)
        raw.keys.append(f"row-{int(row):05d}")
        rows.append(int(row))
    return raw if ferplus is None else relabel_by_ferplus(raw, ferplus, rows)


def _fer7_name(emotion, where: str) -> str:
    try:
        code = int(emotion)
    except (TypeError, ValueError):
        raise DataError(f"{where}: emotion {emotion!r} is not a code 0-6") from None
    if not 0 <= code < len(FER7) or str(emotion).strip() not in {str(code), f"{code}.0"}:
        raise DataError(f"{where}: unknown emotion code {emotion!r} (0-6 expected)")
    return FER7[code]


def read_ferplus_votes(path) -> pd.DataFrame:
    """FER+ vote counts indexed by FER2013 row: ``row`` column, else line order."""
    path = Path(path)
    df = _read_csv(path)
    _require_columns(df, path, FERPLUS_COLUMNS + ["unknown", "NF"])
    if "row" in df.columns:
        df = df.set_index("row")
    return df


def ferplus_vote_counts(path, rows) -> tuple[np.ndarray, np.ndarray]:
    """Emotion vote counts (N, 8; FERPLUS_COLUMNS) of FER2013 ``rows``, and whether each is a
    face: rows whose taggers mostly said not-a-face, or that have no emotion vote, are not."""
    votes = read_ferplus_votes(path)
    missing = [r for r in rows if r not in votes.index]
    if missing:
        raise DataError(f"{path}: no FER+ votes for FER2013 row(s) {', '.join(map(str, missing[:5]))}")
    counts = votes.loc[rows, FERPLUS_COLUMNS].to_numpy(dtype=np.int64)
    not_face = votes.loc[rows, "NF"].to_numpy()
    total = counts.sum(1)
    return counts, (not_face * 2 <= not_face + total) & (total > 0)


def vote_labels(counts: np.ndarray, label_set: str, mode: str) -> tuple[list[str | None], list[str | None], np.ndarray]:
    """Labels of images from their FER+ emotion vote counts (N, 8).

    Returns (class name or None, why it is None, vote distribution over the label set's
    classes). ``majority``: one emotion holds more than half of the emotion votes;
    ``plurality``: one emotion has strictly the most votes; ``bins``: the votes are first
    binned into the label set, and its class with strictly the most votes wins (the
    benchmark's majority label: ties left out). Votes for an emotion the label set
    cannot hold (contempt in fer7) or drops (surprise in bin3-nosurprise) count nowhere.
    """
    if mode not in FERPLUS_MODES:
        raise DataError(f"unknown FER+ label mode {mode!r}; choose {', '.join(FERPLUS_MODES)}")
    classes = check_label_set(label_set)
    emotions = [canonical(c) for c in FERPLUS_COLUMNS]
    to_class = np.zeros((len(emotions), len(classes)))
    for i, emotion in enumerate(emotions):
        try:
            mapped = map_label(emotion, label_set)
        except LabelError:
            continue
        if mapped is not None:
            to_class[i, classes.index(mapped)] = 1.0
    binned = counts @ to_class
    totals = binned.sum(1, keepdims=True)
    distribution = np.divide(binned, totals, out=np.zeros_like(binned), where=totals > 0).astype(np.float32)
    names: list[str | None] = []
    reasons: list[str | None] = []
    for row_counts, row_binned in zip(counts, binned):
        source, labels = (row_binned, classes) if mode == "bins" else (row_counts, emotions)
        top = source.max()
        winner = labels[int(source.argmax())]
        if top == 0:
            names.append(None), reasons.append(f"FER+ no vote in {label_set}")
        elif (source == top).sum() > 1:
            names.append(None), reasons.append("FER+ tie")
        elif mode == "majority" and top * 2 <= row_counts.sum():
            names.append(None), reasons.append("FER+ no majority")
        else:
            names.append(winner), reasons.append(None)
    return names, reasons, distribution


# ---------------------------------------------------------------- image files


def decode_image(data: bytes, name: str, channels: int = 1) -> np.ndarray:
    """Decode image bytes to uint8 (H, W) or (H, W, 3); DataError names the file."""
    if not data:
        raise DataError(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{name}: {img.width}x{img.height} pixels is too large (limit {MAX_IMAGE_PIXELS})")
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
            return np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise DataError(f"{name}: not a readable image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{name}: damaged image ({exc})") from None


def _split_folder_match(part: str, usage: str | None) -> bool:
    return usage is not None and part.lower() in FOLDER_SPLITS[usage]


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A zip entry's bytes, inflating no more than its declared size (a zip whose headers
    understate an entry would otherwise inflate up to ``ZipFile.read``'s 1 GiB cap)."""
    if info.file_size > MAX_IMAGE_PIXELS * 4:
        raise DataError(f"{info.filename}: {info.file_size:,} bytes is too large for an image")
    try:
        with archive.open(info) as member:
            return member.read(info.file_size)
    except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
        raise DataError(f"{info.filename}: cannot be read from the zip ({exc})") from None


def _iter_tree(path: Path):
    """(relative posix path, bytes loader) for every file in a folder or a zip."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield file.relative_to(path).as_posix(), file.read_bytes
    elif zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if not info.is_dir():
                yield info.filename, (lambda info=info: _read_member(archive, info))
    else:
        raise DataError(f"{path}: not a folder, a zip, or a csv this reader knows")


def read_image_tree(path, split=None, skip_bad=False, channels=1) -> RawSet:
    """Class-per-folder images: the label is the name of each image's folder."""
    path = Path(path)
    usage = normalize_split(split)
    raw = RawSet([], [], [], path)
    for rel, load in _iter_tree(path):
        parts = PurePosixPath(rel).parts
        if any(p in ("..", "") for p in parts) or rel.startswith("/"):
            raise DataError(f"{path}: entry {rel!r} points outside the data set")
        if PurePosixPath(rel).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if usage is not None and not any(_split_folder_match(p, usage) for p in parts[:-1]):
            continue
        if len(parts) < 2:
            raw.skipped["image outside a label folder"] += 1
            continue
        folder = parts[-2]
        if folder.lower() in IGNORED_FOLDERS:
            raw.skipped[f"in {folder}/"] += 1
            continue
        name = canonical(folder)
        if name not in KNOWN_NAMES:
            raise DataError(f"{path}: folder {folder!r} (for {rel}) is not a label; known: {', '.join(sorted(KNOWN_NAMES))}")
        try:
            image = decode_image(load(), f"{path.name}/{rel}", channels)
        except DataError:
            if not skip_bad:
                raise
            raw.skipped["unreadable image"] += 1
            continue
        raw.images.append(image)
        raw.names.append(name)
        raw.keys.append(rel)
    if usage is not None and not raw.images and not raw.skipped:
        raise MissingSplitError(f"{path}: no {'/'.join(FOLDER_SPLITS[usage])} folder with images")
    if not raw.images and not raw.skipped:
        raise DataError(f"{path}: no images in label folders (expected e.g. happy/ or positive/ folders)")
    return raw


def _affectnet_csv(path: Path, usage: str | None) -> Path:
    if path.is_file():
        if usage is not None:
            raise DataError(f"{path}: an AffectNet csv is already one split; drop --split or pass the folder")
        return path
    for folder in (path, path / "Manually_Annotated_file_lists"):
        name = AFFECTNET_SPLIT_FILES.get(usage or "Training")
        if name and (folder / name).exists():
            return folder / name
    raise MissingSplitError(f"{path}: no AffectNet {AFFECTNET_SPLIT_FILES.get(usage or 'Training', '?')} found")


def read_affectnet(path, split=None, skip_bad=False, channels=1, image_root=None) -> RawSet:
    """AffectNet csv (subDirectory_filePath, face box, expression) plus its images.

    Expressions 0-7 are the eight emotions; 8 (none), 9 (uncertain) and 10 (no face) are
    skipped and counted. Each image is cropped to its face box.
    """
    path = Path(path)
    csv_path = _affectnet_csv(path, normalize_split(split))
    df = _read_csv(csv_path)
    _require_columns(df, csv_path, ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "expression"])
    if image_root is None:
        base = path if path.is_dir() else csv_path.parent
        candidates = [base / "Manually_Annotated_Images", base.parent / "Manually_Annotated_Images", base]
        image_root = next(c for c in candidates if c.is_dir())
    image_root = Path(image_root)
    raw = RawSet([], [], [], csv_path)
    for i, rec in enumerate(df.itertuples(index=False)):
        where = f"{csv_path.name} line {i + 2}"
        try:
            try:
                code = int(rec.expression)
            except (TypeError, ValueError):
                raise DataError(f"{where}: expression {rec.expression!r} is not a code 0-10") from None
            if code in (8, 9, 10):
                raw.skipped[{8: "AffectNet none", 9: "AffectNet uncertain", 10: "AffectNet no face"}[code]] += 1
                continue
            if not 0 <= code < len(AFFECT8):
                raise DataError(f"{where}: unknown expression code {code}")
            file = image_root / str(rec.subDirectory_filePath)
            if not file.is_file():
                raise DataError(f"{where}: image {rec.subDirectory_filePath} not found under {image_root}")
            image = decode_image(file.read_bytes(), str(file), channels)
            x, y, w, h = (int(rec.face_x), int(rec.face_y), int(rec.face_width), int(rec.face_height))
            crop = image[max(y, 0): y + h, max(x, 0): x + w]
            if crop.size == 0:
                raise DataError(f"{where}: face box {x},{y},{w},{h} lies outside the image")
        except DataError:
            if not skip_bad:
                raise
            raw.skipped["malformed row"] += 1
            continue
        raw.images.append(crop)
        raw.names.append(AFFECT8[code])
        raw.keys.append(str(rec.subDirectory_filePath))
    return raw


# ---------------------------------------------------------------- dispatch


def _is_affectnet(path: Path) -> bool:
    if path.is_dir():
        return any((f / n).exists() for f in (path, path / "Manually_Annotated_file_lists")
                   for n in AFFECTNET_SPLIT_FILES.values())
    if path.suffix.lower() == ".csv":
        with open(path, "rb") as fh:
            return b"subDirectory_filePath" in fh.readline()
    return False


def read_raw(path, split=None, skip_bad=False, channels=1, ferplus=None) -> RawSet:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if _is_affectnet(path):
        return read_affectnet(path, split, skip_bad, channels)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return read_fer2013(path, split, skip_bad, ferplus)
    raw = read_image_tree(path, split, skip_bad, channels)
    rows = fer2013_rows(raw.keys)
    if rows is not None:
        # a ferml.pack zip: its images keep their FER2013 keys, so a seeded validation draw
        # from it holds out the faces the csv's would
        raw.keys = [f"row-{row:05d}" for row in rows]
    if ferplus is None:
        return raw
    if rows is None:
        raise DataError(f"--ferplus relabels FER2013 faces by row: give the FER2013 csv, or a zip from "
                        f"python -m ferml.pack (its images are named row-NNNNN); {path.name} is neither")
    return relabel_by_ferplus(raw, ferplus, rows)


def fer2013_rows(keys: list[str]) -> list[int] | None:
    """The FER2013 rows of images named ``row-NNNNN`` (as ferml.pack names them), or None
    unless every image is so named."""
    rows = []
    for key in keys:
        match = PACKED_NAME.fullmatch(PurePosixPath(key).stem)
        if match is None:
            return None
        rows.append(int(match.group(1)))
    return rows or None


def relabel_by_ferplus(raw: RawSet, ferplus, rows: list[int]) -> RawSet:
    """The FER2013 faces of ``raw`` with their FER+ votes; those the crowd called not a face dropped."""
    votes, is_face = ferplus_vote_counts(ferplus, rows)
    kept = raw.subset(np.flatnonzero(is_face))
    kept.votes = list(votes[is_face])
    kept.skipped["FER+ not a face"] += int((~is_face).sum())
    return kept


def to_model_array(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (C, size, size) from a (H, W) or (H, W, 3) uint8 image."""
    if image.ndim == 3 and channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 2 and channels == 3:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[0] != size or image.shape[1] != size:
        shrinking = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = image[None]
    else:
        image = image.transpose(2, 0, 1)
    return np.ascontiguousarray(image)


def prepare(raw: RawSet, label_set: str, size: int, channels: int, ferplus_mode: str = "majority",
            keep_all_voted: bool = False) -> ImageSet:
    """Map labels into ``label_set`` (dropping and counting what it drops) and resize.

    Images relabelled by FER+ votes get their label from the votes (``ferplus_mode``) and
    carry their vote distribution as ``targets``; ``keep_all_voted`` keeps every image
    with a vote in the label set, ties and no-majority images included (soft-target
    training), labelled by its most-voted class.
    """
    classes = check_label_set(label_set)
    skipped = Counter(raw.skipped)
    names, reasons, distribution = list(raw.names), [None] * len(raw.names), None
    if raw.votes is not None:
        counts = np.asarray(raw.votes, dtype=np.int64).reshape(-1, len(FERPLUS_COLUMNS))
        names, reasons, distribution = vote_labels(counts, label_set, ferplus_mode)
        if keep_all_voted:
            voted = distribution.sum(1) > 0
            names = [classes[int(d.argmax())] if ok else n for n, d, ok in zip(names, distribution, voted)]
            reasons = [None if ok else r for r, ok in zip(reasons, voted)]
    arrays, labels, keys, kept = [], [], [], []
    for i, (image, name, key) in enumerate(zip(raw.images, names, raw.keys)):
        if reasons[i] is not None:
            skipped[reasons[i]] += 1
            continue
        try:
            mapped = map_label(name, label_set)
        except LabelError:
            skipped[f"{name} not in {label_set}"] += 1
            continue
        if mapped is None:
            skipped[f"{name} dropped by {label_set}"] += 1
            continue
        arrays.append(to_model_array(image, size, channels))
        labels.append(classes.index(mapped))
        keys.append(key)
        kept.append(i)
    if not arrays:
        raise DataError(f"{raw.source}: no images left for label set {label_set}")
    return ImageSet(np.stack(arrays), np.asarray(labels, dtype=np.int64), list(classes), label_set,
                    keys, raw.source, skipped, None if distribution is None else distribution[kept])


def load_dataset(path, label_set="fer7", size=42, channels=1, split=None, skip_bad=False,
                 ferplus=None, ferplus_mode="majority", keep_all_voted=False) -> ImageSet:
    raw = read_raw(path, split, skip_bad, channels, ferplus)
    return prepare(raw, label_set, size, channels, ferplus_mode, keep_all_voted)
