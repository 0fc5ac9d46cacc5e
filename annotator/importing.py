"""Getting images (a folder or a zip) and votes (a csv) into a test set.

``import_testset`` and ``import_votes`` are what the management commands and the staff
upload page both call. A file that cannot be used is reported by name and skipped; a
mistake about the whole input (no such path, an empty or unsafe zip, a bad vote row)
raises ``InputError`` and stores nothing.

A file whose content repeats an image already in the test set is skipped and its name
remembered (``RepeatedFile``): vote rows that name it are listed and left out while the
rest of the votes file imports. Nothing is merged into the image it repeats.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_slug
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from ferml.labels import MAX_LABEL_LENGTH

from . import jobs
from .errors import InputError, shorten
from .models import Image, Job, RepeatedFile, TestSet, Vote, VoteEvent
from .spreadsheet import unescape_cell
from .testsets import LabelScheme, Overlap, apply_label_scheme, do_set_overlap, resolve_testset
from .voting import answer_names, parse_label, refresh_images

MiB = 1024 * 1024

# Formats every browser shows as they are; anything else is refused rather than converted.
ACCEPTED_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}
# Files that operating systems leave in folders and zips; never images of the study.
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}
ZIP_MAGIC = b"PK\x03\x04"
# A message lists this many problems, then says how many more there are.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class ImportLimits:
    """Bounds that keep a hostile or broken upload from exhausting memory or disk."""

    max_image_bytes: int = 50 * MiB
    max_pixels: int = 50_000_000  # about 8660 x 5770; more is an image bomb, not a face
    max_entries: int = 100_000
    max_total_bytes: int = 4 * 1024 * MiB  # uncompressed size of a whole zip
    max_ratio: int = 100  # uncompressed / compressed; image formats are compressed already
    ratio_floor_bytes: int = 10 * MiB  # below this size a high ratio is harmless


DEFAULT_LIMITS = ImportLimits()


@dataclass(frozen=True)
class Problem:
    name: str
    reason: str

    def __str__(self):
        return f"{self.name}: {self.reason}"


@dataclass
class ImportReport:
    testset: TestSet
    created_testset: bool = False
    imported: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    changed: list[Problem] = field(default_factory=list)  # same key, other content: kept the stored one
    duplicates: list[Problem] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    small_face: list[Problem] = field(default_factory=list)
    bad: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # nested zips
    ignored: list[str] = field(default_factory=list)  # hidden and system files

    def summary(self) -> str:
        counts = [
            (self.already_present, "already present"),
            (self.duplicates, "duplicate"),
            (self.no_face, "without a face"),
            (self.small_face, "with a face below the minimum size"),
            (self.bad, "bad"),
            (self.skipped, "nested zip"),
            (self.changed, "changed since the first import"),
        ]
        parts = [f"{len(items)} {what}" for items, what in counts if items]
        skipped = f" ({', '.join(parts)})" if parts else ""
        return f"Imported {len(self.imported)} image(s) into test set {self.testset.name!r}{skipped}."

    def problems(self) -> list[str]:
        """One line per skipped file, naming it and saying why."""
        lines = [f"bad file {p}" for p in self.bad]
        lines += [f"duplicate {p}; votes that name it will be left out" for p in self.duplicates]
        lines += [f"skipped {p}" for p in self.skipped]
        lines += [f"no face found: {name}" for name in self.no_face]
        lines += [f"face too small {p}" for p in self.small_face]
        lines += [f"kept the stored version of {p}" for p in self.changed]
        return lines


class _BadFile(Exception):
    """A file that is skipped; the message is the reason shown to the user."""


@dataclass
class _Entry:
    name: str  # as the user sees it, for reports
    key: str | None  # None when the name itself is unusable (reason in ``problem``)
    size: int
    read: Callable[[], bytes]
    problem: str | None = None


# --- the test set ---------------------------------------------------------------------


def check_testset_name(name: str) -> str:
    try:
        validate_slug(name)
    except ValidationError:
        raise InputError(
            f"The test set name {name!r} is not usable: use letters, digits, '-' and '_' only."
        ) from None
    if len(name) > TestSet._meta.get_field("name").max_length:
        raise InputError(f"The test set name {name!r} is too long (at most 100 characters).")
    return name


def default_testset_name(source_name: str) -> str:
    stem = PurePosixPath(source_name.replace("\\", "/").rstrip("/")).name
    if stem.lower().endswith(".zip"):
        stem = stem[:-4]
    name = slugify(stem)[:100]
    if not name:
        raise InputError(f"Cannot derive a test set name from {source_name!r}; give one with --name.")
    return name


def import_testset(
    source: str | os.PathLike | BinaryIO,
    *,
    name: str | None = None,
    detect_faces: bool = False,
    min_face: int = 0,
    limits: ImportLimits = DEFAULT_LIMITS,
    scheme: LabelScheme | None = None,
    overlap: Overlap | None = None,
    progress: Callable | None = None,
) -> ImportReport:
    """Import a folder or a zip of images into the test set ``name`` (created if needed).

    A new test set takes ``scheme`` (default bin3) and ``overlap`` (default: every
    annotator labels every image); an existing one keeps its scheme, and a different
    ``scheme`` is refused before anything is read.

    ``source`` is a path (folder or .zip) or an open binary zip file (a web upload, whose
    ``.name`` gives the default test set name). An image's key is its relative path.
    With ``detect_faces`` the largest face is cropped and stored as PNG; images without a
    face, or whose face is narrower than ``min_face`` pixels, are skipped and counted.
    Importing the same source again changes nothing.
    """
    if min_face < 0:
        raise InputError(f"--min-face must be 0 or more pixels, not {min_face}.")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            entries, ignored = _folder_entries(path, limits)
            if not entries:
                raise InputError(f"The folder {path} holds no files to import.")
            return _import_entries(entries, ignored, name or default_testset_name(path.resolve().name),
                                   detect_faces, min_face, limits, str(path), scheme, overlap, progress)
        if not path.exists():
            raise InputError(f"{path} does not exist; give a folder or a .zip of images.")
        if not path.is_file():
            raise InputError(f"{path} is neither a folder nor a file.")
        with path.open("rb") as fileobj:
            return _import_zip(fileobj, str(path), name, detect_faces, min_face, limits, scheme, overlap, progress)
    label = getattr(source, "name", None) or "upload.zip"
    return _import_zip(source, label, name, detect_faces, min_face, limits, scheme, overlap, progress)


def _import_zip(fileobj, label, name, detect_faces, min_face, limits, scheme, overlap, progress) -> ImportReport:
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise InputError(f"{label} is not a zip file (or it is damaged); give a folder or a .zip.") from None
    with archive:
        entries, ignored = _zip_entries(archive, label, limits)
        return _import_entries(entries, ignored, name or default_testset_name(label),
                               detect_faces, min_face, limits, label, scheme, overlap, progress)


def _import_entries(entries, ignored, name, detect_faces, min_face, limits, source_name,
                    scheme=None, overlap=None, progress=None) -> ImportReport:
    check_testset_name(name)
    existing = TestSet.objects.filter(name=name).first()
    if existing is not None and scheme is not None:
        apply_label_scheme(existing, scheme)  # refuses another scheme before anything is stored
    testset, created = existing or TestSet(name=name), existing is None
    if created:
        apply_label_scheme(testset, scheme or LabelScheme())
        try:
            with transaction.atomic():
                testset.save()
        except IntegrityError:  # created at the same moment by another import
            testset, created = TestSet.objects.get(name=name), False
    if created and overlap is not None:
        do_set_overlap(testset, overlap)
    report = ImportReport(testset=testset, created_testset=created, ignored=ignored)
    for n, entry in enumerate(entries):
        if progress is not None and n % 50 == 0:
            progress("importing the images", n, len(entries))
        _import_entry(entry, testset, report, detect_faces, min_face, limits)
    if created and not report.imported:
        _refuse_empty_testset(report, source_name)
    if testset.pooled and report.imported:
        with transaction.atomic():
            refresh_images(testset)  # the new images join the queue
    return report


def _refuse_empty_testset(report: ImportReport, source_name: str):
    """A new test set that got no image is not kept: the whole input was unusable."""
    # Only while it is still empty: a concurrent import into the same name keeps it.
    TestSet.objects.filter(pk=report.testset.pk, images__isnull=True).delete()
    problems = report.problems() + [f"ignored {name}" for name in report.ignored]
    raise InputError(
        f"Nothing was imported from {source_name}: none of its files is an image that can be "
        f"labelled, so test set {report.testset.name!r} was not created.{_listing(problems)}"
    )


# --- reading folders and zips ---------------------------------------------------------


def _is_ignored(parts: list[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in SYSTEM_FILES


def _name_problem(key: str) -> str | None:
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "the name contains control characters"
    if len(key) > Image._meta.get_field("key").max_length:
        return "the path is longer than 500 characters"
    return None


def _folder_entries(root: Path, limits: ImportLimits) -> tuple[list[_Entry], list[str]]:
    entries, ignored = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _is_ignored([d]))
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            rel = full.relative_to(root).as_posix()
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(rel).decode("utf-8", "replace")
                entries.append(_Entry(shown, None, 0, bytes, "the file name is not valid UTF-8; rename it"))
                continue
            if _is_ignored(rel.split("/")):
                ignored.append(rel)
                continue
            try:
                size = full.stat().st_size
            except OSError as exc:
                entries.append(_Entry(rel, None, 0, bytes, f"cannot be read ({exc.strerror or exc})"))
                continue
            entries.append(_Entry(rel, rel, size, full.read_bytes, _name_problem(rel)))
    return entries, ignored


def _zip_key(raw: str) -> str:
    """The entry's path inside the zip, refusing anything that points outside it."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _BadFile("absolute path in the zip; entries must be relative paths")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _BadFile("the path leaves the zip's folder (..); refused")
    if not parts:
        raise _BadFile("empty entry name")
    return "/".join(parts)


def _zip_entries(archive: zipfile.ZipFile, label: str, limits: ImportLimits) -> tuple[list[_Entry], list[str]]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise InputError(f"{label} has {len(infos):,} entries, more than the limit of {limits.max_entries:,}.")
    files = [i for i in infos if not i.is_dir()]
    if not files:
        raise InputError(f"The zip {label} is empty: it holds no files.")
    # Entries are read no further than their declared size (_read_member), so these sums bound the work.
    total = sum(i.file_size for i in files)
    packed = sum(i.compress_size for i in files)
    if total > limits.max_total_bytes:
        raise InputError(
            f"{label} unpacks to {total:,} bytes, more than the limit of {limits.max_total_bytes:,}; "
            "split it into smaller zips."
        )
    if total > limits.ratio_floor_bytes and total > limits.max_ratio * max(packed, 1):
        raise InputError(
            f"{label} looks like a zip bomb: {packed:,} bytes unpack to {total:,} "
            f"(more than {limits.max_ratio}x); refused."
        )
    entries, ignored = [], []
    for info in files:
        try:
            key = _zip_key(info.filename)
        except _BadFile as exc:
            entries.append(_Entry(info.filename, None, 0, bytes, str(exc)))
            continue
        if _is_ignored(key.split("/")):
            ignored.append(key)
            continue
        problem = _name_problem(key)
        if info.flag_bits & 0x1:
            problem = "the entry is encrypted"
        elif info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            problem = f"{info.compress_size:,} bytes unpack to {info.file_size:,}: a zip bomb entry; refused"
        entries.append(_Entry(key, key, info.file_size, partial(_read_member, archive, info), problem))
    return entries, ignored


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The entry's bytes, inflating no more than its declared size.

    ``ZipFile.read`` inflates up to 1 GiB before trimming to the declared size, so a zip
    whose headers understate an entry would get past the limits above and fill memory.
    """
    with archive.open(info) as member:
        return member.read(info.file_size)


# --- one image ------------------------------------------------------------------------


def check_image_bytes(data: bytes, limits: ImportLimits = DEFAULT_LIMITS) -> tuple[PILImage.Image, str]:
    """Decode ``data`` fully; return the image and its Pillow format, or raise with the reason."""
    if not data:
        raise _BadFile("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise _BadFile("not an image (no image format recognised)") from None
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise _BadFile("an image bomb: its dimensions are far too large") from None
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise _BadFile(f"damaged image header ({exc})") from None
    fmt = image.format
    if fmt not in ACCEPTED_FORMATS:
        raise _BadFile(f"unsupported image format {fmt}; accepted: {', '.join(ACCEPTED_FORMATS)}")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise _BadFile(
            f"{width} x {height} pixels is over the limit of {limits.max_pixels:,} pixels (an image bomb?)"
        )
    if getattr(image, "n_frames", 1) > 1:
        raise _BadFile(f"animated {fmt}; only still images can be labelled")
    try:
        image.load()
    except Exception as exc:
        raise _BadFile(f"damaged or truncated image ({exc})") from None
    return image, fmt


def _crop_face(image: PILImage.Image, min_face: int):
    """(png bytes, box) of the largest face, or raise _NoFace / _SmallFace."""
    import numpy as np

    from ferml.faces import largest_face

    upright = ImageOps.exif_transpose(image)
    box = largest_face(np.asarray(upright.convert("L")))
    if box is None:
        raise _NoFace
    x, y, w, h = box
    if max(w, h) < min_face:
        raise _SmallFace(f"{w} x {h} px, below --min-face {min_face}")
    crop = upright.crop((x, y, x + w, y + h))
    if crop.mode not in ("1", "L", "LA", "I", "RGB", "RGBA"):
        crop = crop.convert("RGBA" if "A" in crop.getbands() or "transparency" in crop.info else "RGB")
    out = io.BytesIO()
    crop.save(out, format="PNG")
    return out.getvalue(), box


class _NoFace(Exception):
    pass


class _SmallFace(Exception):
    pass


def _import_entry(entry: _Entry, testset, report: ImportReport, detect_faces, min_face, limits):
    if entry.problem or entry.key is None:
        report.bad.append(Problem(entry.name, entry.problem or "unusable name"))
        return
    if entry.key.lower().endswith(".zip"):
        report.skipped.append(Problem(entry.name, "a zip inside the zip; unpack it and import it on its own"))
        return
    if entry.size > limits.max_image_bytes:
        report.bad.append(Problem(entry.name, f"{entry.size:,} bytes is over the limit of {limits.max_image_bytes:,}"))
        return
    try:
        data = entry.read()
    except Exception as exc:  # OSError, BadZipFile, zlib.error, unsupported compression...
        report.bad.append(Problem(entry.name, f"cannot be read ({exc})"))
        return
    sha = hashlib.sha256(data).hexdigest()
    stored = Image.objects.filter(testset=testset, key=entry.key).values_list("sha256", flat=True).first()
    if stored is not None:
        if stored == sha:
            report.already_present.append(entry.key)
        else:
            report.changed.append(Problem(entry.key, "its content differs from the image imported earlier"))
        return
    if data.startswith(ZIP_MAGIC):
        report.skipped.append(Problem(entry.name, "a zip inside the zip; unpack it and import it on its own"))
        return
    try:
        image, fmt = check_image_bytes(data, limits)
    except _BadFile as exc:
        report.bad.append(Problem(entry.name, str(exc)))
        return
    twin = Image.objects.filter(testset=testset, sha256=sha).first()
    if twin is not None:
        report.duplicates.append(Problem(entry.key, f"same content as {twin.key}"))
        RepeatedFile.objects.get_or_create(testset=testset, key=entry.key, defaults={"image": twin})
        return
    box = None
    content, suffix, (width, height) = data, ACCEPTED_FORMATS[fmt], image.size
    if detect_faces:
        try:
            content, box = _crop_face(image, min_face)
        except _NoFace:
            report.no_face.append(entry.key)
            return
        except _SmallFace as exc:
            report.small_face.append(Problem(entry.key, str(exc)))
            return
        suffix, width, height = ".png", box[2], box[3]
    if _store(testset, entry.key, sha, content, suffix, width, height, box):
        report.imported.append(entry.key)
    else:
        report.already_present.append(entry.key)


def _store(testset, key, sha, content, suffix, width, height, box) -> bool:
    """Save the file and its row together; False when a concurrent import got there first."""
    image = Image(testset=testset, key=key, sha256=sha, original_name=PurePosixPath(key).name,
                  width=width, height=height)
    if box is not None:
        image.face_x, image.face_y, image.face_w, image.face_h = box
    image.file.save(f"{sha}{suffix}", ContentFile(content), save=False)
    try:
        with transaction.atomic():
            image.save()
            # a name once skipped as a repeat now has content of its own
            RepeatedFile.objects.filter(testset=testset, key=key).delete()
    except IntegrityError:
        image.file.delete(save=False)
        return False
    except BaseException:
        image.file.delete(save=False)
        raise
    return True


# --- votes ----------------------------------------------------------------------------
#
# A votes file is read as a stream: each row is checked as it comes (``_vote_file_rows``),
# and the good ones are set aside in a temporary table of the database a chunk at a time.
# The database then checks the whole file against itself (two rows of one annotator on one
# image that disagree) and against the stored votes, and writes it in a few statements. All
# of it happens in one transaction, so any problem stores nothing, and memory does not grow
# with the file.

VOTE_COLUMNS = ("image", "annotator", "label")
# Rows set aside per database round trip.
VOTE_CHUNK_ROWS = 5000
# Bytes of the file decoded at a time.
_READ_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class VoteRow:
    line: int
    image: str
    annotator: str
    label: str
    image_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LeftOutRow:
    """A vote row naming a file that was skipped at import as a repeat of another image."""

    line: int
    image: str
    annotator: str
    repeats: str  # key of the stored image with the same content

    def __str__(self):
        return (
            f"line {self.line}: image {self.image!r} repeats {self.repeats!r} (same content, "
            f"skipped when the images were imported); the vote of {self.annotator!r} on it is "
            "left out"
        )


@dataclass(frozen=True)
class CheckedVotes:
    rows: list[VoteRow]  # to import
    left_out: list[LeftOutRow]  # valid rows that name a repeated file


@dataclass
class VoteImportReport:
    testset: TestSet
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    changed: int = 0
    repeated_rows: int = 0  # identical lines that appear more than once
    new_annotators: list[str] = field(default_factory=list)
    left_out: list[LeftOutRow] = field(default_factory=list)

    def problems(self, limit: int | None = None) -> list[str]:
        """One line per row left out (the first ``limit`` of them, then how many more)."""
        lines = [str(row) for row in self.left_out[:limit]]
        if limit is not None and len(self.left_out) > limit:
            lines.append(f"... and {len(self.left_out) - limit} more row(s) left out")
        return lines

    def summary(self) -> str:
        text = (
            f"Imported {self.rows} vote row(s) into test set {self.testset.name!r}: "
            f"{self.created} new, {self.unchanged} already stored"
        )
        if self.changed:
            text += f", {self.changed} changed"
        if self.repeated_rows:
            text += f", {self.repeated_rows} repeated line(s) counted once"
        if self.new_annotators:
            text += f"; new annotator account(s) without a password: {', '.join(self.new_annotators)}"
        if self.left_out:
            text += (
                f"; {len(self.left_out)} row(s) left out: they name files skipped at import "
                "as repeats of another image"
            )
        return text + "."


def import_votes(
    source: str | os.PathLike | BinaryIO,
    *,
    testset: TestSet | str | None = None,
    overwrite: bool = False,
    name: str | None = None,
) -> VoteImportReport:
    """Import a csv of ``image,annotator,label`` rows, all or nothing.

    Unknown annotators become accounts without a usable password. A row that repeats a
    stored vote changes nothing; one that contradicts a stored vote is an error unless
    ``overwrite`` (then the change is recorded as a VoteEvent). The one exception to all
    or nothing: a valid row naming a file that the image import skipped as a repeat of
    another image is left out and listed in the report's ``left_out``. ``name`` is what
    messages call the file (default: its path, or the upload's name).
    """
    with _vote_source(source, name) as (stream, label):
        if not isinstance(testset, TestSet):
            testset = resolve_testset(testset)
        try:
            with transaction.atomic():
                return _import_vote_stream(stream, label, testset, overwrite)
        except IntegrityError:
            raise InputError(
                f"Votes of test set {testset.name!r} changed while {label} was being imported; "
                "nothing was imported. Run the import again."
            ) from None


@contextmanager
def _vote_source(source, name: str | None):
    """(a binary stream, the name messages use) for a path or an open file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            raise InputError(f"{path} does not exist.") from None
        except IsADirectoryError:
            raise InputError(f"{path} is a folder; give the votes csv file.") from None
        with stream:
            yield stream, name or str(path)
    else:
        yield source, name or getattr(source, "name", None) or "the uploaded file"


def _listing(problems: list[str], total: int | None = None) -> str:
    """One indented line per problem, the first MAX_LISTED_PROBLEMS of them."""
    total = len(problems) if total is None else total
    listed = "".join(f"\n  {line}" for line in problems[:MAX_LISTED_PROBLEMS])
    if total > MAX_LISTED_PROBLEMS:
        listed += f"\n  ... and {total - MAX_LISTED_PROBLEMS} more"
    return listed


def _fail(source_name: str, problems: list[str], total: int | None = None):
    """Stop the import: ``problems`` are the first (or all) of ``total`` problems, by line."""
    total = len(problems) if total is None else total
    if total == 1:
        raise InputError(f"{source_name}, {problems[0]}. Nothing from the file was imported.")
    raise InputError(
        f"{source_name} has {total} problems; nothing from the file was imported:{_listing(problems, total)}"
    )


@dataclass(frozen=True)
class _Problem:
    line: int
    message: str


class _Problems:
    """The first problems of a file by line (as many as a message lists) and how many in all."""

    def __init__(self):
        self.first: list[_Problem] = []
        self.total = 0

    def add(self, problem: _Problem):
        self.add_many([problem], 1)

    def add_many(self, problems: list[_Problem], total: int):
        """``problems``: the first (by line) of ``total`` further problems."""
        self.total += total
        if problems:
            self.first = sorted([*self.first, *problems], key=lambda p: p.line)[:MAX_LISTED_PROBLEMS]

    def fail_if_any(self, source_name: str):
        if self.total:
            _fail(source_name, [p.message for p in self.first], self.total)


def _text_lines(stream, source_name: str) -> Iterator[str]:
    """The file's lines as text, their ends kept (as ``csv`` wants them), a block at a time.

    A line ends at a line feed, a carriage return, or both. Bytes that are not UTF-8 stop
    the import with the number of the line holding them; a UTF-8 byte order mark at the
    start is dropped.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines_before, pending, started = 0, "", False
    while True:
        block = stream.read(_READ_BLOCK)
        buffered, _ = decoder.getstate()
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            line = newlines_before + (buffered + block)[: exc.start].count(b"\n") + 1
            raise InputError(
                f"{source_name} is not UTF-8 text (line {line} has bytes that are not UTF-8); "
                "save it as UTF-8 csv. Nothing from the file was imported."
            ) from None
        newlines_before += block.count(b"\n")
        if text and not started:
            text, started = text.removeprefix("\ufeff"), True
        lines = list(io.StringIO(pending + text, newline=""))
        # the last line may go on (or be "\r" before "\n") in the next block
        pending = lines.pop() if lines and block and not lines[-1].endswith("\n") else ""
        yield from lines
        if not block:
            if pending:
                yield pending
            return


def _vote_file_rows(lines: Iterable[str], testset: TestSet, source_name: str
                    ) -> Iterator[VoteRow | LeftOutRow | _Problem]:
    """Each row of a votes csv, checked on its own: a ``VoteRow`` to import, a ``LeftOutRow``
    (it names a file skipped as a repeat) or a ``_Problem``. A problem with the file as a
    whole (no header, a missing column) raises InputError."""
    reader = csv.reader(lines)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{source_name} is not readable as csv ({exc}).") from None
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{source_name} is empty: it needs the header line image,annotator,label.")
    columns = [h.strip().lower() for h in header]
    missing = [c for c in VOTE_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"{source_name} lacks the column(s) {', '.join(missing)}; its header line is "
            f"{','.join(header)!r} and must name image,annotator,label."
        )
    repeated = [c for c in VOTE_COLUMNS if columns.count(c) > 1]
    if repeated:
        raise InputError(f"{source_name} names the column(s) {', '.join(repeated)} more than once.")
    at = {c: columns.index(c) for c in VOTE_COLUMNS}
    answers = testset.answers
    image_ids = dict(Image.objects.filter(testset=testset).values_list("key", "id"))
    repeats = dict(RepeatedFile.objects.filter(testset=testset).values_list("key", "image__key"))
    username_ok = UnicodeUsernameValidator()
    good_names: set[str] = set()
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Problem(reader.line_num, f"line {reader.line_num}: not readable as csv ({exc})")
            return
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            yield _Problem(line, f"line {line}: {len(fields)} field(s), but the header has {len(header)}")
            continue
        # Cells the export quoted against spreadsheet formulas are read back as they were.
        image, annotator, label = (unescape_cell(fields[at[c]].strip()) for c in VOTE_COLUMNS)
        label = parse_label(label, answers)
        if label is None:
            yield _Problem(line, f"line {line}: unknown label {shorten(fields[at['label']])!r} "
                                 f"(use {answer_names(answers)})")
            continue
        if not image:
            yield _Problem(line, f"line {line}: the image column is empty")
            continue
        image_id = image_ids.get(image)
        repeat_of = None if image_id is not None else repeats.get(image)
        if image_id is None and repeat_of is None:
            yield _Problem(line, f"line {line}: image {image!r} is not in test set {testset.name!r}")
            continue
        if annotator not in good_names:
            try:
                if not annotator or len(annotator) > 150:
                    raise ValidationError("length")
                username_ok(annotator)
            except ValidationError:
                yield _Problem(line, f"line {line}: {annotator!r} is not a valid annotator name "
                                     "(1 to 150 letters, digits and @ . + - _)")
                continue
            good_names.add(annotator)
        if repeat_of is not None:
            yield LeftOutRow(line, image, annotator, repeat_of)
        else:
            yield VoteRow(line, image, annotator, label, image_id)


def _disagreement(line: int, annotator: str, image: str, label: str, first_line: int, first_label: str):
    return _Problem(line, f"line {line}: annotator {annotator!r} labels image {image!r} {label!r}, "
                          f"but line {first_line} says {first_label!r}")


def check_vote_rows(data: bytes, testset: TestSet, source_name: str = "the votes file") -> CheckedVotes:
    """Parse and validate every row of a votes csv held in memory; raise InputError naming
    each bad line (what ``import_votes`` checks, for a file small enough to hold).

    Valid rows naming a file skipped at import as a repeat (``RepeatedFile``) are set
    aside in ``left_out`` rather than refused.
    """
    rows, left_out, problems = [], [], _Problems()
    seen: dict[tuple[str, str], VoteRow] = {}
    for item in _vote_file_rows(_text_lines(io.BytesIO(data), source_name), testset, source_name):
        if isinstance(item, _Problem):
            problems.add(item)
        elif isinstance(item, LeftOutRow):
            left_out.append(item)
        else:
            first = seen.setdefault((item.image, item.annotator), item)
            if first.label != item.label:
                problems.add(_disagreement(item.line, item.annotator, item.image, item.label,
                                           first.line, first.label))
            else:
                rows.append(item)
    problems.fail_if_any(source_name)
    return CheckedVotes(rows, left_out)


def _import_vote_stream(stream, source_name: str, testset: TestSet, overwrite: bool) -> VoteImportReport:
    report = VoteImportReport(testset=testset)
    problems = _Problems()
    staged = _StagedVotes(testset)
    chunk: list[VoteRow] = []
    for item in _vote_file_rows(_text_lines(stream, source_name), testset, source_name):
        if isinstance(item, _Problem):
            problems.add(item)
        elif isinstance(item, LeftOutRow):
            report.left_out.append(item)
        else:
            chunk.append(item)
            if len(chunk) == VOTE_CHUNK_ROWS:
                staged.add(chunk)
                chunk = []
    staged.add(chunk)
    staged.pair_up(lock=overwrite)
    problems.add_many(*staged.disagreements())
    problems.fail_if_any(source_name)
    if not overwrite:
        conflicts = _Problems()
        conflicts.add_many(*staged.conflicts())
        conflicts.fail_if_any(source_name)
    counts = staged.write()
    if testset.pooled:
        refresh_images(testset)
    report.rows = staged.n_rows
    report.created, report.unchanged, report.changed = counts["new"], counts["same"], counts["changed"]
    report.repeated_rows = staged.n_rows - counts["pairs"]
    report.new_annotators = sorted(staged.new_annotators)
    staged.drop()
    return report


class _StagedVotes:
    """The good rows of a votes file in a temporary table of this connection, checked and
    written by the database in a few statements (``annotator_vote_import``, and
    ``..._pairs``: the first row of each image and annotator with the stored label)."""

    ROWS = "annotator_vote_import"
    PAIRS = "annotator_vote_import_pairs"

    def __init__(self, testset: TestSet):
        self.testset = testset
        self.n_rows = 0
        self.user_ids: dict[str, int] = {}
        self.new_annotators: list[str] = []
        self.cursor = connection.cursor()
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.PAIRS}")
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.ROWS}")
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.ROWS} (line BIGINT NOT NULL, image_id BIGINT NOT NULL, "
            f"annotator_id BIGINT NOT NULL, label VARCHAR({MAX_LABEL_LENGTH}) NOT NULL)"
        )

    def add(self, rows: list[VoteRow]) -> None:
        if not rows:
            return
        self._annotators({row.annotator for row in rows})
        values = [(row.line, row.image_id, self.user_ids[row.annotator], row.label) for row in rows]
        columns = "(line, image_id, annotator_id, label)"
        if connection.vendor == "postgresql":
            with self.cursor.copy(f"COPY {self.ROWS} {columns} FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            self.cursor.executemany(f"INSERT INTO {self.ROWS} {columns} VALUES (%s, %s, %s, %s)", values)
        self.n_rows += len(rows)

    def _annotators(self, names: set[str]) -> None:
        """Ids of these annotators; an unknown name becomes an account without a password."""
        unknown = names - self.user_ids.keys()
        if not unknown:
            return
        User = get_user_model()
        self.user_ids.update(User.objects.filter(username__in=unknown).values_list("username", "pk"))
        for name in sorted(unknown - self.user_ids.keys()):
            self.user_ids[name] = User.objects.create_user(username=name, password=None).pk
            self.new_annotators.append(name)

    def pair_up(self, *, lock: bool) -> None:
        """One row per (image, annotator): its first line, with the label stored for it now.
        With ``lock`` (an overwrite) the stored votes the file names are locked first."""
        vote = Vote._meta.db_table
        if lock and connection.features.has_select_for_update:
            self.cursor.execute(
                f"SELECT v.id FROM {vote} v WHERE EXISTS (SELECT 1 FROM {self.ROWS} s WHERE "
                "s.image_id = v.image_id AND s.annotator_id = v.annotator_id) FOR UPDATE"
            )
            while self.cursor.fetchmany(10_000):
                pass
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.PAIRS} AS "
            "SELECT r.image_id, r.annotator_id, r.line, r.label, v.label AS stored_label FROM ("
            "  SELECT image_id, annotator_id, line, label, ROW_NUMBER() OVER ("
            f"    PARTITION BY image_id, annotator_id ORDER BY line) AS rn FROM {self.ROWS}"
            f") r LEFT JOIN {vote} v ON v.image_id = r.image_id AND v.annotator_id = r.annotator_id "
            "WHERE r.rn = 1"
        )
        self.cursor.execute(f"CREATE INDEX {self.PAIRS}_key ON {self.PAIRS} (image_id, annotator_id)")

    def disagreements(self) -> tuple[list[_Problem], int]:
        """The first rows that label an image otherwise than an earlier row of the same
        annotator, and how many there are."""
        self.cursor.execute(
            "SELECT s.line, s.annotator_id, s.image_id, s.label, p.line, p.label, COUNT(*) OVER () "
            f"FROM {self.ROWS} s JOIN {self.PAIRS} p "
            "ON p.image_id = s.image_id AND p.annotator_id = s.annotator_id "
            f"WHERE s.label <> p.label ORDER BY s.line LIMIT {MAX_LISTED_PROBLEMS}"
        )
        found = self.cursor.fetchall()
        names, keys = self._names(found)
        problems = [_disagreement(line, names[user], keys[image], label, first_line, first_label)
                    for line, user, image, label, first_line, first_label, _ in found]
        return problems, (found[0][-1] if found else 0)

    def conflicts(self) -> tuple[list[_Problem], int]:
        """The first rows that contradict a stored vote, and how many there are."""
        self.cursor.execute(
            "SELECT line, annotator_id, image_id, label, stored_label, COUNT(*) OVER () "
            f"FROM {self.PAIRS} WHERE stored_label <> label ORDER BY line LIMIT {MAX_LISTED_PROBLEMS}"
        )
        found = self.cursor.fetchall()
        names, keys = self._names(found)
        problems = [
            _Problem(line, f"line {line}: annotator {names[user]!r} has already labelled image "
                           f"{keys[image]!r} {stored!r}, the file says {label!r} (use --overwrite to replace)")
            for line, user, image, label, stored, _ in found
        ]
        return problems, (found[0][-1] if found else 0)

    def _names(self, found) -> tuple[dict[int, str], dict[int, str]]:
        """Annotator names and image keys of the ids in ``found`` (columns 1 and 2)."""
        names = {pk: name for name, pk in self.user_ids.items()}
        keys = dict(Image.objects.filter(pk__in={row[2] for row in found}).values_list("id", "key"))
        return names, keys

    def write(self) -> dict[str, int]:
        """Store the new votes and (after ``conflicts`` found none, or to overwrite) the
        changed ones, each with its VoteEvent; return the counts."""
        vote, event, pairs = Vote._meta.db_table, VoteEvent._meta.db_table, self.PAIRS
        self.cursor.execute(
            "SELECT COUNT(*), "
            "COALESCE(SUM(CASE WHEN stored_label IS NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN stored_label = label THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN stored_label <> label THEN 1 ELSE 0 END), 0) FROM {pairs}"
        )
        counts = dict(zip(["pairs", "new", "same", "changed"], (int(n) for n in self.cursor.fetchone())))
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        self.cursor.execute(
            f"INSERT INTO {event} (image_id, annotator_id, action, label, previous_label, at) "
            "SELECT image_id, annotator_id, %s, label, COALESCE(stored_label, ''), %s "
            f"FROM {pairs} WHERE stored_label IS NULL OR stored_label <> label ORDER BY line",
            [VoteEvent.Action.IMPORT.value, now],
        )
        self.cursor.execute(
            f"INSERT INTO {vote} (image_id, annotator_id, testset_id, label, created_at, updated_at, "
            "time_spent_ms) "
            f"SELECT image_id, annotator_id, %s, label, %s, %s, NULL FROM {pairs} "
            "WHERE stored_label IS NULL ORDER BY line",
            [self.testset.pk, now, now],
        )
        if counts["changed"]:
            self.cursor.execute(
                f"UPDATE {vote} SET label = p.label, updated_at = %s FROM {pairs} p "
                f"WHERE {vote}.image_id = p.image_id AND {vote}.annotator_id = p.annotator_id "
                "AND p.stored_label <> p.label",
                [now],
            )
        return counts

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE {self.PAIRS}")
        self.cursor.execute(f"DROP TABLE {self.ROWS}")
        self.cursor.close()


# --- large uploads: the same import, in the background ---------------------------------

VOTE_IMPORT_JOB = "import_votes"


def _vote_upload_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "vote-uploads"


def queue_vote_import(upload, *, testset: TestSet | str | None, overwrite: bool = False, user=None):
    """Hand an uploaded votes csv to a background job that runs ``import_votes`` on it.

    The upload is kept in MEDIA_ROOT/vote-uploads/ until the job ends; the staff import page
    shows the job's progress and then its report (or its error, and nothing stored).
    """
    if not isinstance(testset, TestSet):
        testset = resolve_testset(testset)
    folder = _vote_upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.csv"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    job = jobs.create(VOTE_IMPORT_JOB, testset=testset, user=user, options={
        "file": path.name, "name": PurePosixPath(upload.name or "votes.csv").name,
        "size": upload.size, "overwrite": overwrite,
    })
    return jobs.start(job)


def vote_import_job(job, progress) -> dict:
    """The background job of ``queue_vote_import``: its report's summary and listed rows.

    Safe to run again after its worker ended: the import is one transaction, so a run that
    died stored nothing, or (killed while committing) all of it, which the next run finds
    stored and reports as such."""
    path = _vote_upload_folder() / job.options["file"]
    progress("importing")
    report = import_votes(path, testset=job.testset, overwrite=job.options["overwrite"],
                          name=job.options["name"])
    return {"summary": report.summary(), "problems": report.problems(limit=MAX_LISTED_PROBLEMS)}


def remove_uploaded_votes(job) -> None:
    """The uploaded file of a vote import, once the job has ended (done, failed or given up)."""
    (_vote_upload_folder() / job.options["file"]).unlink(missing_ok=True)


# --- large zips of images: the same import, in the background ---------------------------

IMAGE_IMPORT_JOB = "import_images"


def _image_upload_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "image-uploads"


def queue_image_import(upload, *, name: str | None, detect_faces: bool = False, min_face: int = 0,
                       scheme: LabelScheme | None = None, overlap: Overlap | None = None, user=None):
    """Hand an uploaded zip of images to a background job that runs ``import_testset`` on it.

    The zip is kept in MEDIA_ROOT/image-uploads/ until the job ends. The import is safe to
    run again: images already imported are recognised by their content and skipped, so a run
    whose worker ended is resumed where it stopped."""
    folder = _image_upload_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.zip"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    job = jobs.create(IMAGE_IMPORT_JOB, user=user, options={
        "file": path.name, "name": PurePosixPath(upload.name or "images.zip").name, "size": upload.size,
        "testset": name, "detect_faces": detect_faces, "min_face": min_face,
        "scheme": None if scheme is None else vars(scheme) | {"custom_labels": list(scheme.custom_labels),
                                                              "extra_answers": list(scheme.extra_answers)},
        "overlap": None if overlap is None else vars(overlap),
    })
    return jobs.start(job)


def image_import_job(job, progress) -> dict:
    """The background job of ``queue_image_import``: the import's summary and problems."""
    options = job.options
    path = _image_upload_folder() / options["file"]
    progress("importing the images")
    scheme = options.get("scheme")
    report = import_testset(
        path, name=options["testset"] or default_testset_name(options["name"]),
        detect_faces=options["detect_faces"], min_face=options["min_face"],
        scheme=None if scheme is None else LabelScheme(scheme["scheme"], tuple(scheme["custom_labels"]),
                                                       tuple(scheme["extra_answers"])),
        overlap=None if options.get("overlap") is None else Overlap(**options["overlap"]),
        progress=progress,
    )
    if report.testset.pk is not None:
        Job.objects.filter(pk=job.pk).update(testset=report.testset)
    return {"summary": report.summary(), "problems": report.problems()[:MAX_LISTED_PROBLEMS],
            "testset": report.testset.name}


def remove_uploaded_images(job) -> None:
    (_image_upload_folder() / job.options["file"]).unlink(missing_ok=True)
