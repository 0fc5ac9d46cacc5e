"""Csv injection: no cell the app writes starts a spreadsheet formula, and the votes csv
still restores exactly what it backed up."""
import csv
import io
import zipfile

import numpy as np
import pytest

from annotator.models import Vote, VoteEvent
from annotator.spreadsheet import FORMULA_STARTS, escape_cell, unescape_cell

from .helpers import login, png_bytes, run

pytestmark = pytest.mark.django_db

# Image keys (file names) and annotator names that a spreadsheet would run as formulas.
HOSTILE_KEYS = ["=HYPERLINK(1).png", "+1+1.png", "-2.png", "@SUM(A1).png", "'=quoted.png",
                "''+twice.png", "'plain.png", "plain.png"]
HOSTILE_NAMES = ["+annie", "-dash", "@at", "plain"]


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+1", "'+1+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("'=x", "''=x"), ("''+x", "'''+x"),  # already quoted: one quote more, so import can undo it
    ("'x", "'x"), ("x=1", "x=1"), ("", ""), (3, "3"), (0.5, "0.5"),
])
def test_a_cell_that_would_be_a_formula_gets_a_quote(value, written):
    assert escape_cell(value) == written
    assert unescape_cell(written) == str(value)
    assert not escape_cell(value).startswith(tuple(FORMULA_STARTS))


def cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


@pytest.fixture
def hostile_study(tmp_path, django_user_model):
    folder = tmp_path / "hostile"
    folder.mkdir()
    for n, key in enumerate(HOSTILE_KEYS):
        (folder / key).write_bytes(png_bytes(np.full((48, 48), 10 * n, dtype=np.uint8)))
    run("import_testset", str(folder), "--name", "hostile")
    rows = set()
    for n, name in enumerate(HOSTILE_NAMES):
        for m, key in enumerate(HOSTILE_KEYS):
            rows.add((key, name, ["negative", "neutral", "positive"][(n + m) % 3]))
    # Written by hand the way the export writes: a quote before a formula character, and
    # one more before a key that starts with quotes and then one (the only keys that need it).
    (tmp_path / "votes.csv").write_text("image,annotator,label\n" + "".join(
        f"{escape_cell(i)},{a},{l}\n" for i, a, l in sorted(rows)))
    run("import_votes", str(tmp_path / "votes.csv"))
    return rows


def stored():
    return set(Vote.objects.values_list("image__key", "annotator__username", "label"))


def test_every_export_is_formula_free_and_the_votes_backup_restores_exactly(hostile_study, tmp_path):
    assert stored() == hostile_study
    run("export_votes", str(tmp_path / "backup.csv"))
    run("export_testset", str(tmp_path / "majority.csv"))
    run("export_testset", str(tmp_path / "labelled.zip"))
    with zipfile.ZipFile(tmp_path / "labelled.zip") as archive:
        zip_csv = archive.read("labels.csv").decode()
    for text in [(tmp_path / "backup.csv").read_text(), (tmp_path / "majority.csv").read_text(), zip_csv]:
        written = cells(text)
        assert "'=HYPERLINK(1).png" in written and "''=quoted.png" in written
        assert [c for c in written if c.startswith(tuple(FORMULA_STARTS))] == []
    assert "'+annie" in cells((tmp_path / "backup.csv").read_text())

    Vote.objects.all().delete()
    VoteEvent.objects.all().delete()
    run("import_votes", str(tmp_path / "backup.csv"))
    assert stored() == hostile_study  # the quotes came off again, and only they
    run("export_votes", str(tmp_path / "backup2.csv"))
    assert (tmp_path / "backup2.csv").read_bytes() == (tmp_path / "backup.csv").read_bytes()


def test_the_downloads_are_formula_free(client, staff, hostile_study):
    login(client, staff)
    for kind in ("votes", "csv"):
        written = cells(b"".join(client.get(f"/staff/export/hostile/{kind}/").streaming_content).decode())
        assert "'@SUM(A1).png" in written
        assert [c for c in written if c.startswith(tuple(FORMULA_STARTS))] == []
