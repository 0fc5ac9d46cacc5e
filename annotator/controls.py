"""Control images: images with a known answer, served among the others to measure each
annotator, and left out of every statistic of the study (SPEC "Crowd-shaped studies").

Staff mark them from a csv (``image,label``, the labels spelled as in a votes file) with
``import_controls`` or one at a time on the staff pages (``do_set_control``).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from core.errors import InputError, shorten

from .models import Image, Lease, TestSet
from .spreadsheet import unescape_cell
from .voting import answer_names, parse_label

CONTROL_COLUMNS = ("image", "label")
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_LISTED = 20


@dataclass(frozen=True)
class ControlImport:
    testset: TestSet
    marked: int  # images that became control images or got another known answer
    unchanged: int

    def summary(self) -> str:
        return (f"Control images of test set {self.testset.name!r}: {self.marked} marked, "
                f"{self.unchanged} already so; {count_controls(self.testset)} in all.")


def count_controls(testset: TestSet) -> int:
    return Image.objects.filter(testset=testset).exclude(control_label="").count()


def _changed(testset: TestSet) -> None:
    """Orders and caches of served images hold control images apart: make them read again."""
    TestSet.objects.filter(pk=testset.pk).update(images_version=F("images_version") + 1)


def import_controls(data: bytes, testset: TestSet, source_name: str = "the control file") -> ControlImport:
    """Mark the images a csv names as control images with their known answer, all or nothing:
    any bad row (unknown image, a label outside the test set's answers) stores nothing."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source_name} is not UTF-8 text; save it as UTF-8 csv. Nothing was marked.") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in CONTROL_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{source_name} lacks the column(s) {', '.join(missing)}; its header must name "
                         "image,label. Nothing was marked.")
    at = {c: header.index(c) for c in CONTROL_COLUMNS}
    keys = dict(Image.objects.filter(testset=testset).values_list("key", "pk"))
    answers = testset.answers
    wanted: dict[int, str] = {}
    problems: list[str] = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(f"line {line}: {len(fields)} field(s), but the header has {len(header)}")
            continue
        key, label = (unescape_cell(fields[at[c]].strip()) for c in CONTROL_COLUMNS)
        answer = parse_label(label, answers)
        if key not in keys:
            problems.append(f"line {line}: image {shorten(key)!r} is not in test set {testset.name!r}")
        elif answer is None:
            problems.append(f"line {line}: unknown label {shorten(label)!r} (use {answer_names(answers)})")
        elif wanted.setdefault(keys[key], answer) != answer:
            problems.append(f"line {line}: image {key!r} is given two answers, {wanted[keys[key]]!r} and {answer!r}")
    if problems:
        listed = "".join(f"\n  {p}" for p in problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InputError(f"{source_name} has {len(problems)} problem(s); nothing was marked:{listed}{more}")
    if not wanted:
        raise InputError(f"{source_name} names no image; nothing was marked.")
    with transaction.atomic():
        stored = dict(Image.objects.filter(pk__in=list(wanted)).values_list("pk", "control_label"))
        marked = [pk for pk, answer in wanted.items() if stored[pk] != answer]
        for pk in marked:
            Image.objects.filter(pk=pk).update(control_label=wanted[pk], complete=False, n_needed=0)
        Lease.objects.filter(image_id__in=marked).delete()
        if marked:
            _changed(testset)
    return ControlImport(testset, len(marked), len(wanted) - len(marked))


def do_set_control(image: Image, label: str | None) -> Image:
    """Make ``image`` a control image with the known answer ``label``, or (None or empty) a
    regular image again; its votes count in the statistics again then."""
    testset = image.testset
    answer = ""
    if label:
        answer = parse_label(label, testset.answers)
        if answer is None:
            raise InputError(f"Unknown label {shorten(label)!r} for a control image: use "
                             f"{answer_names(testset.answers)}.")
    with transaction.atomic():
        Image.objects.filter(pk=image.pk).update(control_label=answer)
        Lease.objects.filter(image=image).delete()
        if testset.pooled:
            from .voting import refresh_images

            refresh_images(testset, [image.pk])
        _changed(testset)
    image.control_label = answer
    return image
