"""Getting votes (a csv) into a test set: ``import_votes``, what the ``import_votes`` command
and the staff upload page both call. A bad row raises ``InputError`` naming it and stores
nothing; rows that name a repeated file are listed and left out."""
from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import MAX_LISTED_PROBLEMS, InputError, problem_listing, shorten
from ferml.labels import MAX_LABEL_LENGTH

from .models import Image, RepeatedFile, TestSet, Vote, VoteEvent
from .spreadsheet import unescape_cell
from .testsets import resolve_testset
from .voting import answer_names, parse_label, refresh_images

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


def _fail(source_name: str, problems: list[str], total: int | None = None):
    """Stop the import: ``problems`` are the first (or all) of ``total`` problems, by line."""
    total = len(problems) if total is None else total
    if total == 1:
        raise InputError(f"{source_name}, {problems[0]}. Nothing from the file was imported.")
    raise InputError(
        f"{source_name} has {total} problems; nothing from the file was imported:{problem_listing(problems, total)}"
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


