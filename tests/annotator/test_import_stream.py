"""import_votes reads a votes file as a stream: checked a chunk at a time, set aside in the
database, checked there as a whole; all or nothing, with the same messages as a small file.
Large web uploads go to a background job that runs the same import.

Chunks and read blocks are made tiny here, so a few dozen rows cross many of both.
"""
import io
import tracemalloc

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from annotator import import_jobs, vote_import
from annotator.models import Image, Vote, VoteEvent
from core import jobs
from core.errors import InputError
from core.models import Job

from .helpers import run

pytestmark = pytest.mark.django_db
LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch):
    monkeypatch.setattr(vote_import, "VOTE_CHUNK_ROWS", 7)
    monkeypatch.setattr(vote_import, "_READ_BLOCK", 64)


@pytest.fixture
def keys(study):
    return list(Image.objects.filter(testset=study).order_by("key").values_list("key", flat=True))


def rows_for(keys, annotators):
    """Every annotator on every image; the label from both, so each file says the same."""
    return [(k, a, LABELS[(i + j) % 3]) for j, a in enumerate(annotators) for i, k in enumerate(keys)]


def write(tmp_path, rows, name="votes.csv", newline="\n", header="image,annotator,label", bom=False):
    text = newline.join([header, *(",".join(r) for r in rows)]) + newline
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def stored():
    return set(Vote.objects.values_list("image__key", "annotator__username", "label"))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_file_of_many_chunks_and_blocks_imports_exactly(tmp_path, keys, newline):
    names = [f"p{n:02d}" for n in range(12)]
    rows = rows_for(keys, names)
    path = write(tmp_path, rows + rows[5:9], newline=newline, bom=True)  # 4 lines again, identical
    out, _ = run("import_votes", str(path))
    assert (f"Imported {len(rows) + 4} vote row(s) into test set 'study': {len(rows)} new, 0 already "
            "stored, 4 repeated line(s) counted once") in out
    assert stored() == set(rows)
    assert VoteEvent.objects.filter(action="import").count() == len(rows)
    assert set(get_user_model().objects.values_list("username", flat=True)) == set(names)
    again, _ = run("import_votes", str(path))
    assert f"0 new, {len(rows)} already stored" in again and VoteEvent.objects.count() == len(rows)


def test_a_bad_byte_in_a_later_block_names_its_line(tmp_path, keys):
    rows = rows_for(keys, ["a1", "a2", "a3", "a4"])
    path = write(tmp_path, rows)
    data = path.read_bytes().replace(b"a3", b"\xe93", 1)  # Latin-1 'é' in the first a3 row
    line = path.read_bytes()[: path.read_bytes().index(b"a3")].count(b"\n") + 1
    assert line > 10  # well past the first block of 64 bytes
    path.write_bytes(data)
    with pytest.raises(CommandError, match=rf"not UTF-8 text \(line {line} has bytes"):
        run("import_votes", str(path))
    assert not Vote.objects.exists() and not get_user_model().objects.exists()


def test_rows_that_disagree_are_found_across_chunks(tmp_path, keys):
    rows = rows_for(keys, ["a1", "a2", "a3"])
    first = rows[1]
    later = (first[0], first[1], LABELS[(LABELS.index(first[2]) + 1) % 3])
    path = write(tmp_path, rows + [later])
    with pytest.raises(CommandError) as caught:
        run("import_votes", str(path))
    line = len(rows) + 2
    assert str(caught.value) == (
        f"{path}, line {line}: annotator 'a1' labels image '{first[0]}' '{later[2]}', but line 3 "
        f"says '{first[2]}'. Nothing from the file was imported.")
    assert not Vote.objects.exists() and not get_user_model().objects.exists()


def test_many_problems_are_counted_and_the_first_listed_in_line_order(tmp_path, keys):
    rows = rows_for(keys, ["a1", "a2", "a3"])  # 24 good rows, lines 2-25
    bad_labels = [(keys[n % 8], f"b{n}", "happy") for n in range(25)]  # lines 26-50
    disagreeing = [(r[0], r[1], LABELS[(LABELS.index(r[2]) + 1) % 3]) for r in rows[:5]]  # lines 51-55
    path = write(tmp_path, rows[:3] + disagreeing[:1] + rows[3:] + bad_labels + disagreeing[1:])
    with pytest.raises(CommandError) as caught:
        run("import_votes", str(path))
    message = str(caught.value)
    assert message.startswith(f"{path} has 30 problems; nothing from the file was imported:")
    listed = message.splitlines()[1:]
    assert listed[0].startswith("  line 5: annotator 'a1' labels image")  # a disagreement comes first
    assert listed[1] == "  line 27: unknown label 'happy' (use negative, neutral or positive)"
    assert len(listed) == 21 and listed[-1] == "  ... and 10 more"
    assert not Vote.objects.exists()


def test_overwriting_across_chunks_records_each_change(tmp_path, keys):
    rows = rows_for(keys, ["a1", "a2", "a3"])
    run("import_votes", str(write(tmp_path, rows)))
    changed = [(k, a, LABELS[(LABELS.index(label) + 1) % 3]) if n % 5 == 0 else (k, a, label)
               for n, (k, a, label) in enumerate(rows)]
    path = write(tmp_path, changed, "changed.csv")
    with pytest.raises(CommandError) as caught:
        run("import_votes", str(path))
    assert "has 5 problems" in str(caught.value) and "(use --overwrite to replace)" in str(caught.value)
    assert stored() == set(rows)
    out, _ = run("import_votes", str(path), "--overwrite")
    assert "0 new, 19 already stored, 5 changed" in out
    assert stored() == set(changed)
    changes = VoteEvent.objects.exclude(previous_label="")
    assert {(e.image.key, e.annotator.username, e.previous_label, e.label) for e in changes} == {
        (k, a, old, new) for (k, a, old), (_, _, new) in zip(rows, changed) if old != new}


def test_memory_does_not_grow_with_the_file(tmp_path, keys):
    """Ten times the rows, the same peak: only a chunk and a block are held at a time."""
    rows = rows_for(keys, ["a1", "a2"])

    def peak(repeats: int) -> int:
        path = write(tmp_path, rows * repeats, f"votes{repeats}.csv")
        Vote.objects.all().delete()
        tracemalloc.start()
        vote_import.import_votes(path, testset="study")
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(150), peak(1500)  # 2,400 and 24,000 rows
    assert stored() == set(rows)
    assert large < 1.25 * small + 200_000, (small, large)


# --- large uploads on the staff page ----------------------------------------------------


def upload(client, path, **extra):
    with path.open("rb") as fileobj:
        return client.post("/staff/import/", {"csv_file": fileobj, "testset": "study", **extra}, follow=True)


def test_a_large_upload_is_imported_by_a_job_and_its_report_shown(client, staff, keys, tmp_path, settings):
    settings.VOTE_UPLOAD_IN_REQUEST_MAX_BYTES = 100
    client.force_login(staff)
    rows = rows_for(keys, ["a1", "a2", "a3"])
    path = write(tmp_path, rows)
    response = upload(client, path)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/staff/import/"
    assert f"votes.csv ({path.stat().st_size:,} bytes) is imported in the background" in page
    assert "Imported 24 vote row(s) into test set &#x27;study&#x27;: 24 new" in page
    assert stored() == set(rows)
    job = Job.objects.get(kind=import_jobs.VOTE_IMPORT_JOB)
    assert job.status == "done" and job.created_by == staff
    assert not any((settings.MEDIA_ROOT / "vote-uploads").iterdir())  # the upload is not kept


def test_a_bad_large_upload_stores_nothing_and_says_why(client, staff, keys, tmp_path, settings):
    settings.VOTE_UPLOAD_IN_REQUEST_MAX_BYTES = 100
    client.force_login(staff)
    path = write(tmp_path, rows_for(keys, ["a1", "a2"]) + [(keys[0], "a9", "happy")])
    page = upload(client, path).content.decode()
    assert "votes.csv, line 18: unknown label &#x27;happy&#x27;" in page
    assert "Nothing from the file was imported." in page and str(tmp_path) not in page
    assert not Vote.objects.exists() and Job.objects.get().status == "failed"


@pytest.mark.django_db(transaction=True)
def test_in_the_background_the_page_answers_at_once_and_the_job_imports(
        client, staff, keys, tmp_path, settings, background_jobs):
    settings.VOTE_UPLOAD_IN_REQUEST_MAX_BYTES = 100
    client.force_login(staff)
    rows = rows_for(keys, ["a1", "a2", "a3"])
    response = upload(client, write(tmp_path, rows))
    assert response.status_code == 200
    job = jobs.wait(Job.objects.get(kind=import_jobs.VOTE_IMPORT_JOB), 30)
    assert job.status == "done" and "24 new" in job.result["summary"]
    assert stored() == set(rows)
    assert "24 new" in client.get("/staff/import/").content.decode()


def test_a_small_upload_still_imports_in_the_request(client, staff, keys, tmp_path):
    client.force_login(staff)
    response = upload(client, write(tmp_path, rows_for(keys, ["a1"])))
    assert response.redirect_chain[-1][0] == "/staff/" and not Job.objects.exists()
    assert len(stored()) == 8


def test_an_upload_names_itself_not_a_server_path(study, keys):
    data = io.BytesIO(b"image,annotator,label\nghost.png,a1,neutral\n")
    data.name = "mine.csv"
    with pytest.raises(InputError, match=r"^mine.csv, line 2: image 'ghost.png'"):
        vote_import.import_votes(data, testset=study)
    with pytest.raises(InputError, match=r"^their votes.csv, line 2"):
        vote_import.import_votes(io.BytesIO(data.getvalue()), testset=study, name="their votes.csv")
