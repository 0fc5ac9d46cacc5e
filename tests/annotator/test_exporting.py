"""export_testset and export_votes against votes set here, by hand."""
import csv
import io
import json
import zipfile

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator import exporting
from annotator.image_import import import_testset
from annotator.majority import image_majority
from annotator.models import Image, Vote

from .helpers import login, run, write_faces

pytestmark = pytest.mark.django_db

# Votes per image (by position in key order) of the 8-image study, and what must come out.
VOTES = [
    ["positive", "positive", "neutral"],     # positive 2/3
    ["negative", "negative", "negative"],    # negative 3/3
    ["neutral", "positive"],                 # tie
    ["negative", "neutral", "positive"],     # three-way tie
    ["neutral"],                             # neutral 1/1
    [],                                      # nobody voted
    ["negative", "negative", "positive", "neutral"],  # negative 2/4
    ["positive", "positive", "positive", "neutral"],  # positive 3/4
]
EXPECTED = [
    # majority, negative, neutral, positive, n_votes, agreement, tie
    ("positive", 0, 1, 2, 3, "0.6667", 0),
    ("negative", 3, 0, 0, 3, "1.0000", 0),
    ("", 0, 1, 1, 2, "", 1),
    ("", 1, 1, 1, 3, "", 1),
    ("neutral", 0, 1, 0, 1, "1.0000", 0),
    ("", 0, 0, 0, 0, "", 0),
    ("negative", 2, 1, 1, 4, "0.5000", 0),
    ("positive", 0, 1, 3, 4, "0.7500", 0),
]


@pytest.fixture
def voted(study, django_user_model):
    people = [django_user_model.objects.create_user(f"v{n}") for n in range(4)]
    images = list(Image.objects.filter(testset=study).order_by("key"))
    for image, labels in zip(images, VOTES):
        for person, label in zip(people, labels):
            Vote.objects.create(image=image, annotator=person, label=label)
    return images


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def expected_rows(images):
    return [
        {"image": image.key, "majority": m, "negative": str(neg), "neutral": str(neu),
         "positive": str(pos), "n_votes": str(n), "agreement": agr, "tie": str(tie)}
        for image, (m, neg, neu, pos, n, agr, tie) in zip(images, EXPECTED)
    ]


def test_image_majority_reports_ties_and_never_breaks_them():
    assert image_majority(["positive", "neutral", "positive"]).label == "positive"
    m = image_majority(["positive", "neutral"])
    assert (m.label, m.tie, m.agreement) == (None, True, None)
    empty = image_majority([])
    assert (empty.label, empty.tie, empty.n_votes, empty.counts) == (None, False, 0, {"negative": 0, "neutral": 0, "positive": 0})
    assert image_majority(["negative"] * 3 + ["neutral"] * 2).agreement == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown label"):
        image_majority(["happy"])


def test_csv_export_one_row_per_image(voted, tmp_path):
    out, _ = run("export_testset", str(tmp_path / "study.csv"))
    assert "Wrote 8 image(s)" in out
    assert read_csv((tmp_path / "study.csv").read_text()) == expected_rows(voted)
    meta = json.loads((tmp_path / "study.json").read_text())
    assert meta["testset"] == "study" and meta["balanced"] is False
    assert meta["counts"] == {"negative": 2, "neutral": 1, "positive": 2, "tie": 2, "unvoted": 1}


def test_zip_export_puts_images_in_label_folders(voted, tmp_path):
    run("export_testset", str(tmp_path / "study.zip"), "--testset", "study")
    with zipfile.ZipFile(tmp_path / "study.zip") as archive:
        rows = read_csv(archive.read("labels.csv").decode())
        meta = json.loads(archive.read("labels.json"))
        names = set(archive.namelist())
        folders = {}
        assert [{k: v for k, v in row.items() if k != "file"} for row in rows] == expected_rows(voted)
        for image, row in zip(voted, rows):
            if row["file"]:
                with image.file.open("rb") as fileobj:
                    assert archive.read(row["file"]) == fileobj.read()
                folders[image.key] = row["file"].split("/")[0]
    keys = [image.key for image in voted]
    assert folders == {keys[0]: "positive", keys[1]: "negative", keys[2]: "tie", keys[3]: "tie",
                       keys[4]: "neutral", keys[6]: "negative", keys[7]: "positive"}
    assert names == {"labels.csv", "labels.json", *(f"{folders[k]}/{k}" for k in folders)}
    assert meta["n_images"] == 8 and meta["n_exported"] == 8


def set_counts(images, per_label, ties, people):
    """Give each image unanimous votes so that the counts per label are exactly ``per_label``."""
    Vote.objects.all().delete()
    labels = [label for label, n in per_label.items() for _ in range(n)] + ["tie"] * ties
    for image, label in zip(images, labels):
        if label == "tie":
            Vote.objects.create(image=image, annotator=people[0], label="negative")
            Vote.objects.create(image=image, annotator=people[1], label="positive")
        else:
            for person in people[:3]:
                Vote.objects.create(image=image, annotator=person, label=label)
    return {image.key: label for image, label in zip(images, labels)}


@pytest.fixture
def larger(tmp_path, fer_faces, django_user_model):
    write_faces(tmp_path / "larger", fer_faces[:20], subfolders=False)
    testset = import_testset(tmp_path / "larger", name="larger").testset
    people = [django_user_model.objects.create_user(f"p{n}") for n in range(3)]
    images = list(testset.images.order_by("key"))
    truth = set_counts(images, {"negative": 6, "neutral": 4, "positive": 7}, ties=3, people=people)
    return truth


def test_balanced_export_keeps_the_smallest_count_per_label(larger, tmp_path):
    truth = larger
    run("export_testset", str(tmp_path / "b.csv"), "--testset", "larger", "--balanced", "--seed", "7")
    rows = read_csv((tmp_path / "b.csv").read_text())
    kept = {row["image"]: row["majority"] for row in rows}
    assert len(rows) == 12
    assert sorted(kept.values()) == ["negative"] * 4 + ["neutral"] * 4 + ["positive"] * 4
    assert all(truth[key] == label for key, label in kept.items())
    assert {k for k, label in truth.items() if label == "neutral"} <= set(kept)  # the smallest keeps all
    meta = json.loads((tmp_path / "b.json").read_text())
    assert meta["balanced"] is True
    assert meta["balance"]["seed"] == 7 and meta["balance"]["per_label"] == 4
    assert meta["balance"]["counts_before"] == {"negative": 6, "neutral": 4, "positive": 7, "tie": 3, "unvoted": 0}
    assert meta["balance"]["counts_after"] == {"negative": 4, "neutral": 4, "positive": 4, "tie": 0, "unvoted": 0}
    # The seed alone decides: the same seed repeats, other seeds choose differently.
    run("export_testset", str(tmp_path / "again.csv"), "--testset", "larger", "--balanced", "--seed", "7")
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "b.csv").read_text()
    choices = set()
    for seed in range(5):
        run("export_testset", str(tmp_path / f"s{seed}.csv"), "--testset", "larger", "--balanced", "--seed", str(seed))
        choices.add((tmp_path / f"s{seed}.csv").read_text())
    assert len(choices) > 1


def test_balanced_zip_has_equal_folders(larger, tmp_path):
    run("export_testset", str(tmp_path / "b.zip"), "--testset", "larger", "--balanced")
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        folders = [name.split("/")[0] for name in archive.namelist() if "/" in name]
        meta = json.loads(archive.read("labels.json"))
    assert sorted(folders) == ["negative"] * 4 + ["neutral"] * 4 + ["positive"] * 4
    assert meta["balance"]["seed"] == 0


def test_export_mistakes_are_clear_errors(study, tmp_path):
    with pytest.raises(CommandError, match="must end in .csv or .zip"):
        run("export_testset", str(tmp_path / "out.txt"))
    with pytest.raises(CommandError, match="does not exist"):
        run("export_testset", str(tmp_path / "missing" / "out.csv"))
    with pytest.raises(CommandError, match="Cannot balance.*negative, neutral, positive"):
        run("export_testset", str(tmp_path / "out.csv"), "--balanced")


def test_votes_export_is_the_import_format(voted, tmp_path):
    out, _ = run("export_votes", str(tmp_path / "votes.csv"))
    assert "Wrote 20 vote(s)" in out
    rows = read_csv((tmp_path / "votes.csv").read_text())
    assert list(rows[0]) == ["image", "annotator", "label"]
    assert {(r["image"], r["annotator"], r["label"]) for r in rows} == set(
        Vote.objects.values_list("image__key", "annotator__username", "label")
    )


def test_staff_downloads(client, staff, voted):
    login(client, staff)
    csv_response = client.get("/staff/export/study/csv/")
    assert csv_response["Content-Disposition"] == 'attachment; filename="study.csv"'
    assert read_csv(b"".join(csv_response.streaming_content).decode()) == expected_rows(voted)
    votes_response = client.get("/staff/export/study/votes/")
    assert len(read_csv(b"".join(votes_response.streaming_content).decode())) == 20
    zip_response = client.get("/staff/export/study/zip/")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(zip_response.streaming_content)))
    assert "labels.csv" in archive.namelist() and "labels.json" in archive.namelist()
    balanced = client.get("/staff/export/study/zip/?balanced=on&seed=3")
    assert 'filename="study-balanced-seed3.zip"' in balanced["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(balanced.streaming_content))) as archive:
        assert sorted(n.split("/")[0] for n in archive.namelist() if "/" in n) == ["negative", "neutral", "positive"]
    assert client.get("/staff/export/study/pdf/").status_code == 404


def test_downloads_read_the_votes_a_few_images_at_a_time(client, staff, voted, monkeypatch):
    """Streamed downloads count votes for a few images per query; rows across those
    boundaries are the same, and the zip's labels.csv (written last) names every file."""
    monkeypatch.setattr(exporting, "_IMAGES_PER_QUERY", 3)
    login(client, staff)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/staff/export/study/csv/")
        assert read_csv(b"".join(response.streaming_content).decode()) == expected_rows(voted)
    assert sum('"annotator_vote"' in q["sql"] for q in captured.captured_queries) == 3  # 8 images
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get("/staff/export/study/zip/").streaming_content)))
    rows = read_csv(archive.read("labels.csv").decode())
    assert [{k: v for k, v in row.items() if k != "file"} for row in rows] == expected_rows(voted)
    assert [name for name in archive.namelist() if "/" in name] == [row["file"] for row in rows if row["file"]]
    assert archive.namelist()[-2:] == ["labels.csv", "labels.json"]
    assert json.loads(archive.read("labels.json"))["counts"] == {
        "negative": 2, "neutral": 1, "positive": 2, "tie": 2, "unvoted": 1}
