"""Getting images (a folder or a zip) into a test set.

``import_testset`` is what the ``import_testset`` command and the staff upload page both
call. A file that cannot be used is reported by name and skipped; a mistake about the whole
input (no such path, an empty or unsafe zip) raises ``InputError`` and stores nothing.

A file whose content repeats an image already in the test set is skipped and its name
remembered (``RepeatedFile``): vote rows that name it are listed and left out while the
rest of a votes file imports. Nothing is merged into the image it repeats.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from core.errors import InputError, problem_listing

from .models import Image, RepeatedFile, TestSet
from .testsets import LabelScheme, Overlap, apply_label_scheme, do_set_overlap
from .voting import refresh_images

MiB = 1024 * 1024

# Formats every browser shows as they are; anything else is refused rather than converted.
ACCEPTED_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif",
                 ".webp": "image/webp", ".bmp": "image/bmp"}
# Files that operating systems leave in folders and zips; never images of the study.
SYSTEM_FILES = {"thumbs.db", "desktop.ini"}
ZIP_MAGIC = b"PK\x03\x04"


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
        f"labelled, so test set {report.testset.name!r} was not created.{problem_listing(problems)}"
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


