"""Getting a labelled test set out: per-image majority csv, image zip, raw votes.

The zip is a class-per-folder data set (a folder per label of the test set's scheme:
``negative/``, ``neutral/``, ``positive/`` for bin3; tied images in ``tie/``) with
``labels.csv`` and ``labels.json`` at its root; an image's key
is flattened into one file name (``a/b.png`` becomes ``a__b.png``) so that its folder is
always its label; images nobody voted on stay out of the folders. The raw votes csv is exactly what ``import_votes``
reads, so a study can be backed up and restored. Every csv cell that a spreadsheet would
run as a formula is written with a quote before it (``spreadsheet.py``). The majority
counts the votes the statistics count (``Vote.objects.counted``): control images and the
votes of excluded annotators stay out; extra answers ("unsure", "not a face") have columns
of their own and no part in the majority.

The database counts the votes per image and label, so an export reads one row per image,
not one per vote; the web downloads are streamed (``iter_*``) and start at once, whatever
the size of the study.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TextIO

from django.core.files.storage import default_storage
from django.db.models import Count, Q
from django.utils import timezone

from core.errors import InputError

from .majority import ImageMajority, majority_of_counts
from .models import LABELS, TestSet, Vote
from .spreadsheet import SafeWriter

# The columns of the default scheme (bin3); a test set's own are ``csv_columns(testset)``.
CSV_COLUMNS = ["image", "majority", *LABELS, "n_votes", "agreement", "tie"]
ZIP_CSV_COLUMNS = [*CSV_COLUMNS, "file"]
ZIP_CSV_NAME = "labels.csv"
ZIP_METADATA_NAME = "labels.json"
TIE_FOLDER = "tie"
FOLDER_SEPARATOR = "__"
VOTE_COLUMNS = ["image", "annotator", "label"]
# Already compressed formats are stored as they are; deflating them again gains nothing.
_STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp"}


@dataclass(frozen=True)
class StoredImage:
    """What an export needs of an image: its id, key, stored file and import time."""

    pk: int
    key: str
    file: str  # its name in the default storage
    created_at: datetime

    def open(self):
        return default_storage.open(self.file, "rb")


def csv_columns(testset: TestSet) -> list[str]:
    """image, majority, a count per label, a count per extra answer, n_votes, agreement, tie."""
    return ["image", "majority", *testset.labels, *testset.extra_answers, "n_votes", "agreement", "tie"]


@dataclass(frozen=True)
class ExportRow:
    image: StoredImage
    majority: ImageMajority  # over the labels' votes
    extras: dict[str, int] = field(default_factory=dict)  # votes per extra answer

    @property
    def folder(self) -> str | None:
        """Where the zip puts the image: its majority label, ``tie``, or nowhere (no votes)."""
        if self.majority.label:
            return self.majority.label
        return TIE_FOLDER if self.majority.tie else None

    @property
    def file(self) -> str:
        """Path inside the zip: the flattened key in its label folder, or "" (not in the zip)."""
        if self.folder is None:
            return ""
        return f"{self.folder}/{flat_name(self.image)}"


def flat_name(image: StoredImage) -> str:
    """The key as one file name with the stored format's suffix.

    Readers of class-per-folder data sets (ferml included) take an image's immediate
    folder as its label, so subfolders of the key become part of the name.
    """
    name = image.key.replace("/", FOLDER_SEPARATOR)
    suffix = PurePosixPath(image.file).suffix
    if PurePosixPath(name).suffix.lower() != suffix:
        name += suffix  # a cropped face is stored as PNG whatever the source was
    return name


@dataclass(frozen=True)
class Export:
    rows: list[ExportRow]
    metadata: dict


# Images whose votes one query counts while rows are read: the first rows of a download
# come after one small query, not after counting every vote of the study.
_IMAGES_PER_QUERY = 2000


def iter_testset_rows(testset: TestSet) -> Iterator[ExportRow]:
    """One row per regular image of ``testset`` (no control image), by key, with its
    majority over the counted votes, counted for ``_IMAGES_PER_QUERY`` images at a time."""
    labels, answers = testset.labels, testset.answers
    per_answer = {f"n{i}": Count("id", filter=Q(label=answer)) for i, answer in enumerate(answers)}
    nothing = [0] * len(answers)
    images = list(testset.images.filter(control_label="").order_by("key")
                  .values_list("id", "key", "file", "created_at"))
    counted = Vote.objects.counted(testset)
    for start in range(0, len(images), _IMAGES_PER_QUERY):
        chunk = images[start:start + _IMAGES_PER_QUERY]
        counts = {
            image_id: numbers
            for image_id, *numbers in counted.filter(image_id__in=[image[0] for image in chunk])
            .order_by().values("image_id").annotate(**per_answer).values_list("image_id", *per_answer)
        }
        for image in chunk:
            numbers = counts.get(image[0], nothing)
            yield ExportRow(StoredImage(*image), majority_of_counts(dict(zip(labels, numbers))),
                            dict(zip(answers[len(labels):], numbers[len(labels):])))


def testset_rows(testset: TestSet) -> list[ExportRow]:
    return list(iter_testset_rows(testset))


def _labels_of(rows: list[ExportRow]) -> list[str]:
    return list(rows[0].majority.counts) if rows else list(LABELS)


def _counts(rows: list[ExportRow], labels: list[str]) -> dict[str, int]:
    tally = Counter(row.folder or "unvoted" for row in rows)
    return {name: tally.get(name, 0) for name in [*labels, TIE_FOLDER, "unvoted"]}


def balance_rows(rows: list[ExportRow], seed: int) -> tuple[list[ExportRow], dict]:
    """Keep the same number of images per label by seeded random omission.

    Tied and unvoted images are left out; every label keeps as many images as the
    smallest one has (thesis 7.2: 192 images became 105 = 3 x 35).
    """
    labels = _labels_of(rows)
    by_label = {label: [r for r in rows if r.majority.label == label] for label in labels}
    per_label = min(len(group) for group in by_label.values())
    if per_label == 0:
        empty = [label for label, group in by_label.items() if not group]
        raise InputError(
            f"Cannot balance the test set: no image has the majority label {', '.join(empty)}."
        )
    rng = random.Random(seed)
    kept_ids = set()
    for label in labels:  # fixed label order so the seed alone decides
        kept_ids.update(r.image.pk for r in rng.sample(by_label[label], per_label))
    kept = [r for r in rows if r.image.pk in kept_ids]
    info = {
        "seed": seed,
        "per_label": per_label,
        "counts_before": _counts(rows, labels),
        "counts_after": _counts(kept, labels),
    }
    return kept, info


def build_export(testset: TestSet, *, balanced: bool = False, seed: int = 0) -> Export:
    rows = testset_rows(testset)
    balance = None
    if balanced:
        rows, balance = balance_rows(rows, seed)
    return Export(rows, export_metadata(testset, rows, balance))


def export_metadata(testset: TestSet, rows: list[ExportRow], balance: dict | None = None) -> dict:
    """``labels.json``: what was exported, with the counts per folder and the balancing."""
    labels = testset.labels
    return {
        "testset": testset.name,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "label_scheme": testset.scheme_name,
        "labels": labels,
        "extra_answers": list(testset.extra_answers),
        "n_images": testset.images.count(),
        "n_control_images": testset.images.exclude(control_label="").count(),
        "n_exported": len(rows),
        "counts": _counts(rows, labels),
        "balanced": balance is not None,
        "balance": balance,
        "columns": {
            "image": "image key (relative path at import)",
            "majority": "label with the most votes; empty on a tie or without votes",
            **{label: f"votes for {label}" for label in labels},
            **{extra: f"votes for the extra answer {extra} (in no majority)" for extra in testset.extra_answers},
            "n_votes": "number of votes for a label (extra answers not counted)",
            "agreement": "share of the votes equal to the majority; empty without a majority",
            "tie": "1 when two or more labels share the highest count",
            "file": "path of the image inside the zip (zip export only)",
        },
    }


def write_testset_csv(rows: list[ExportRow], out: TextIO, testset: TestSet, *,
                      files: list[str] | None = None) -> None:
    """The per-image csv; ``files`` (paths inside a zip) adds the ``file`` column."""
    for _ in _testset_csv(rows, out, testset, files):
        pass


def iter_testset_csv(rows: Iterable[ExportRow], testset: TestSet) -> Iterator[str]:
    """The per-image csv in pieces, for a streamed download (``rows`` may be read as it goes)."""
    buffer = _Pieces()
    for _ in _testset_csv(rows, buffer, testset):
        if buffer.size >= _PIECE:
            yield buffer.take()
    yield buffer.take()


def _testset_csv(rows, out, testset: TestSet, files=None) -> Iterator[None]:
    writer = SafeWriter(out)
    columns = csv_columns(testset)
    writer.writerow(columns if files is None else [*columns, "file"])
    labels, extras = testset.labels, testset.extra_answers
    for n, row in enumerate(rows):
        m = row.majority
        agreement = "" if m.agreement is None else f"{m.agreement:.4f}"
        line = [row.image.key, m.label or "", *(m.counts[label] for label in labels),
                *(row.extras.get(extra, 0) for extra in extras), m.n_votes, agreement, int(m.tie)]
        writer.writerow(line if files is None else [*line, files[n]])
        yield


def named_rows(rows: Iterable[ExportRow]) -> Iterator[tuple[ExportRow, str]]:
    """Each row with its path in the zip, made unique where flattening made two keys meet."""
    taken = set()
    for row in rows:
        name = row.file
        if name in taken:
            path = PurePosixPath(name)
            name = str(path.with_name(f"{path.stem}-{row.image.pk}{path.suffix}"))
        if name:
            taken.add(name)
        yield row, name


def write_testset_zip(export: Export, out: BinaryIO, testset: TestSet) -> None:
    for _ in _testset_zip(export.rows, lambda rows: export.metadata, out, testset):
        pass


def iter_testset_zip(testset: TestSet, rows: Iterable[ExportRow], balance: dict | None = None) -> Iterator[bytes]:
    """The zip in pieces as it is written, for a streamed download (no temporary file);
    ``rows`` may be read as it goes: the images come first, ``labels.csv`` and
    ``labels.json`` last."""
    buffer = _Pieces(binary=True)
    for _ in _testset_zip(rows, lambda written: export_metadata(testset, written, balance), buffer, testset):
        if buffer.size >= _PIECE:
            yield buffer.take()
    yield buffer.take()


def _testset_zip(rows: Iterable[ExportRow], metadata: Callable[[list[ExportRow]], dict], out,
                 testset: TestSet) -> Iterator[None]:
    """The images by label, then ``labels.csv`` and ``labels.json`` (``metadata`` of the rows)."""
    written: list[ExportRow] = []
    names: list[str] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for row, name in named_rows(rows):
            written.append(row)
            names.append(name)
            if not name:
                continue
            suffix = PurePosixPath(name).suffix.lower()
            kind = zipfile.ZIP_STORED if suffix in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(name, date_time=row.image.created_at.timetuple()[:6])
            info.compress_type = kind
            with row.image.open() as src, archive.open(info, "w") as dst:
                shutil.copyfileobj(src, dst)
            yield
        text = io.StringIO()
        write_testset_csv(written, text, testset, files=names)
        archive.writestr(ZIP_CSV_NAME, text.getvalue())
        archive.writestr(ZIP_METADATA_NAME, json.dumps(metadata(written), indent=2) + "\n")
        yield


# A streamed download is sent in pieces of about this many bytes (or characters).
_PIECE = 256 * 1024


class _Pieces:
    """A write-only file (text, or bytes with ``binary``) that keeps what is written until
    it is taken: what a streamed download sends next."""

    def __init__(self, binary: bool = False):
        self.empty = b"" if binary else ""
        self.parts, self.size = [], 0

    def write(self, data):
        self.parts.append(bytes(data) if self.empty == b"" else data)
        self.size += len(data)
        return len(data)

    def flush(self):
        pass

    def take(self):
        joined = self.empty.join(self.parts)
        self.parts, self.size = [], 0
        return joined


def export_testset(testset: TestSet, out: str | Path, *, balanced: bool = False, seed: int = 0) -> Export:
    """Write ``out`` (.csv with a .json beside it, or .zip); return what was written."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".zip"):
        raise InputError(f"{out} must end in .csv or .zip.")
    if not out.parent.is_dir():
        raise InputError(f"The folder {out.parent} does not exist.")
    export = build_export(testset, balanced=balanced, seed=seed)
    if suffix == ".csv":
        with out.open("w", encoding="utf-8", newline="") as fileobj:
            write_testset_csv(export.rows, fileobj, testset)
        metadata_path = out.with_suffix(".json")
        metadata_path.write_text(json.dumps(export.metadata, indent=2) + "\n", encoding="utf-8")
    else:
        with out.open("wb") as fileobj:
            write_testset_zip(export, fileobj, testset)
    return export


def write_votes_csv(testset: TestSet, out: TextIO) -> int:
    """Every vote of ``testset`` as ``image,annotator,label`` (the import_votes format)."""
    return sum(1 for _ in _votes_csv(testset, out))


def iter_votes_csv(testset: TestSet) -> Iterator[str]:
    """The votes csv in pieces, read from the database as they are sent."""
    buffer = _Pieces()
    for _ in _votes_csv(testset, buffer):
        if buffer.size >= _PIECE:
            yield buffer.take()
    yield buffer.take()


def _votes_csv(testset: TestSet, out) -> Iterator[None]:
    """Writes the header, then each vote, yielding after each vote."""
    writer = SafeWriter(out)
    writer.writerow(VOTE_COLUMNS)
    votes = (
        Vote.objects.filter(testset=testset)
        .order_by("image__key", "annotator__username")
        .values_list("image__key", "annotator__username", "label")
    )
    for row in votes.iterator(chunk_size=5000):
        writer.writerow(row)
        yield


def export_votes(testset: TestSet, out: str | Path) -> int:
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"The folder {out.parent} does not exist.")
    with out.open("w", encoding="utf-8", newline="") as fileobj:
        return write_votes_csv(testset, fileobj)
