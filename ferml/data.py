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
- AffectNet: its csv of labels and face boxes plus the image folder.
"""
from __future__ import annotations

import hashlib
import io
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
FERPLUS_MODES = ("majority", "plurality")
KNOWN_NAMES = set(FER7) | set(AFFECT8) | {"negative", "positive", "non-positive"}
IGNORED_FOLDERS = {"tie", "ties", "unknown", "__macosx"}
MAX_IMAGE_PIXELS = 40_000_000

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


@dataclass
class ImageSet:
    images: np.ndarray  # uint8, (N, C, S, S)
    labels: np.ndarray  # int64 class indices into ``classes``
    classes: list[str]
    label_set: str
    keys: list[str]
    source: Path
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.label_set,
                        [self.keys[i] for i in index], self.source, self.skipped)


def normalize_split(split: str | None) -> str | None:
    if split is None:
        return None
    key = split.strip().lower()
    if key not in SPLIT_ALIASES:
        raise DataError(f"unknown split {split!r}; use train, val or test (Training, PublicTest, PrivateTest)")
    return SPLIT_ALIASES[key]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_fer2013(path, split=None, skip_bad=False, ferplus=None, ferplus_mode="majority") -> RawSet:
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
    votes_label = None
    if ferplus is not None:
        votes_label = ferplus_labels(ferplus, ferplus_mode, rows=df["row"].to_numpy(), skipped=raw.skipped)
    for pos, (emotion, pixels, row, line) in enumerate(df[["emotion", "pixels", "row", "line"]].itertuples(index=False)):
        where = f"{path.name} line {line} (row {row})"
        try:
            image = _parse_pixels(pixels, where)
            if votes_label is not None:
                name = votes_label[pos]
                if name is None:
                    continue
            else:
                try:
                    code = int(emotion)
                except (TypeError, ValueError):
                    raise DataError(f"{where}: emotion {emotion!r} is not a code 0-6") from None
                if not 0 <= code < len(FER7) or str(emotion).strip() not in {str(code), f"{code}.0"}:
                    raise DataError(f"{where}: unknown emotion code {emotion!r} (0-6 expected)")
                name = FER7[code]
        except DataError:
            if not skip_bad:
                raise
            raw.skipped["malformed row"] += 1
            continue
        raw.images.append(image)
        raw.names.append(name)
        raw.keys.append(f"row-{int(row):05d}")
    return raw


def read_ferplus_votes(path) -> pd.DataFrame:
    """FER+ vote counts indexed by FER2013 row: ``row`` column, else line order."""
    path = Path(path)
    df = _read_csv(path)
    _require_columns(df, path, FERPLUS_COLUMNS + ["unknown", "NF"])
    if "row" in df.columns:
        df = df.set_index("row")
    return df


def ferplus_labels(path, mode, rows, skipped: Counter) -> list[str | None]:
    """Label of each FER2013 row from its FER+ votes, None (counted) where there is none.

    ``majority``: one emotion holds more than half of the emotion votes. ``plurality``:
    one emotion has strictly the most votes. Unknown and not-a-face votes never count;
    rows whose taggers mostly said not-a-face are skipped.
    """
    if mode not in FERPLUS_MODES:
        raise DataError(f"unknown FER+ label mode {mode!r}; choose {' or '.join(FERPLUS_MODES)}")
    votes = read_ferplus_votes(path)
    missing = [r for r in rows if r not in votes.index]
    if missing:
        raise DataError(f"{path}: no FER+ votes for FER2013 row(s) {', '.join(map(str, missing[:5]))}")
    counts = votes.loc[rows, FERPLUS_COLUMNS].to_numpy()
    not_face = votes.loc[rows, "NF"].to_numpy()
    names = [canonical(c) for c in FERPLUS_COLUMNS]
    out: list[str | None] = []
    for row_counts, nf in zip(counts, not_face):
        total = row_counts.sum()
        top = row_counts.max()
        if nf * 2 > nf + total or total == 0:
            skipped["FER+ not a face"] += 1
            out.append(None)
        elif (row_counts == top).sum() > 1:
            skipped["FER+ tie"] += 1
            out.append(None)
        elif mode == "majority" and top * 2 <= total:
            skipped["FER+ no majority"] += 1
            out.append(None)
        else:
            out.append(names[int(row_counts.argmax())])
    return out


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


def read_raw(path, split=None, skip_bad=False, channels=1, ferplus=None, ferplus_mode="majority") -> RawSet:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    name = path.name.lower()
    if _is_affectnet(path):
        return read_affectnet(path, split, skip_bad, channels)
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return read_fer2013(path, split, skip_bad, ferplus, ferplus_mode)
    if ferplus is not None:
        raise DataError("--ferplus relabels a FER2013 csv; the data given is not one")
    return read_image_tree(path, split, skip_bad, channels)


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


def prepare(raw: RawSet, label_set: str, size: int, channels: int) -> ImageSet:
    """Map labels into ``label_set`` (dropping and counting what it drops) and resize."""
    classes = check_label_set(label_set)
    skipped = Counter(raw.skipped)
    arrays, labels, keys = [], [], []
    for image, name, key in zip(raw.images, raw.names, raw.keys):
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
    if not arrays:
        raise DataError(f"{raw.source}: no images left for label set {label_set}")
    return ImageSet(np.stack(arrays), np.asarray(labels, dtype=np.int64), list(classes), label_set,
                    keys, raw.source, skipped)


def load_dataset(path, label_set="fer7", size=42, channels=1, split=None, skip_bad=False,
                 ferplus=None, ferplus_mode="majority") -> ImageSet:
    raw = read_raw(path, split, skip_bad, channels, ferplus, ferplus_mode)
    return prepare(raw, label_set, size, channels)
