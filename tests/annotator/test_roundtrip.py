"""A study out and back in: real FER+ crowd votes survive export and import unchanged."""
import zipfile
from collections import Counter

import pytest

from annotator.majority import image_majority
from annotator.models import Image, Vote, VoteEvent

from .helpers import run, sha256, shuffled_votes, write_faces

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd_study(tmp_path, fer_faces, ferplus_bin3_votes):
    """30 PublicTest faces with their FER+ votes handed to a01..a10 in a seeded order per image."""
    public = [f for f in fer_faces if f.usage == "PublicTest"]

    def tied(face):
        counts = sorted(Counter(ferplus_bin3_votes[face.row]).values(), reverse=True)
        return len(counts) > 1 and counts[0] == counts[1]

    # Mostly ordinary images, plus a few on which the crowd ties.
    faces = [f for f in public if not tied(f)][:26] + [f for f in public if tied(f)][:4]
    folder = tmp_path / "crowd"
    written = write_faces(folder, faces)  # keys like PublicTest/fer00123.png
    votes = shuffled_votes({f.row: ferplus_bin3_votes[f.row] for f in faces}, seed=1)
    rows = {
        (f"PublicTest/fer{row:05d}.png", f"a{n + 1:02d}", label)
        for row, labels in votes.items() for n, label in enumerate(labels)
    }
    csv_path = tmp_path / "crowd-votes.csv"
    csv_path.write_text("image,annotator,label\n" + "".join(f"{i},{a},{l}\n" for i, a, l in sorted(rows)))
    return folder, written, csv_path, rows


def stored_votes(testset="crowd"):
    return set(Vote.objects.filter(image__testset__name=testset).values_list(
        "image__key", "annotator__username", "label"))


def test_votes_round_trip_losslessly(crowd_study, tmp_path):
    folder, _, csv_path, rows = crowd_study
    run("import_testset", str(folder))
    run("import_votes", str(csv_path))
    assert stored_votes() == rows and len(rows) > 200
    run("export_votes", str(tmp_path / "backup.csv"))
    # Restore into an empty database state: the same votes come back, no more, no fewer.
    Vote.objects.all().delete()
    VoteEvent.objects.all().delete()
    run("import_votes", str(tmp_path / "backup.csv"))
    assert stored_votes() == rows
    run("export_votes", str(tmp_path / "backup2.csv"))
    assert (tmp_path / "backup2.csv").read_bytes() == (tmp_path / "backup.csv").read_bytes()


def test_exported_zip_is_a_class_per_folder_data_set(crowd_study, tmp_path):
    folder, written, csv_path, rows = crowd_study
    run("import_testset", str(folder))
    run("import_votes", str(csv_path))
    run("export_testset", str(tmp_path / "crowd.zip"))
    by_image = {}
    for key, _, label in rows:
        by_image.setdefault(key, []).append(label)
    expected_folder = {}
    for key, labels in by_image.items():
        m = image_majority(labels)
        expected_folder[key] = m.label or ("tie" if m.tie else None)
    assert "tie" in expected_folder.values()
    flat = {key.replace("/", "__"): key for key in written}
    with zipfile.ZipFile(tmp_path / "crowd.zip") as archive:
        files = [n for n in archive.namelist() if "/" in n]
        # One folder level only: the folder is the label, the key is flattened into the name.
        assert {flat[n.split("/")[1]]: n.split("/")[0] for n in files} == {
            k: f for k, f in expected_folder.items() if f
        }
        for name in files:
            assert archive.read(name) == written[flat[name.split("/")[1]]]
        archive.extractall(tmp_path / "unpacked")
    # The zip imports as a test set of its own, image for image.
    run("import_testset", str(tmp_path / "crowd.zip"), "--name", "crowd-export")
    reimported = dict(Image.objects.filter(testset__name="crowd-export").values_list("key", "sha256"))
    assert reimported == {n: sha256(written[flat[n.split("/")[1]]]) for n in files}


def test_ferml_reads_the_exported_zip_and_folder_as_they_are(crowd_study, tmp_path):
    from ferml.data import read_image_tree

    folder, written, csv_path, rows = crowd_study
    run("import_testset", str(folder))
    run("import_votes", str(csv_path))
    run("export_testset", str(tmp_path / "crowd.zip"))
    with zipfile.ZipFile(tmp_path / "crowd.zip") as archive:
        labelled = {n: n.split("/")[0] for n in archive.namelist() if "/" in n and not n.startswith("tie/")}
        n_ties = sum(n.startswith("tie/") for n in archive.namelist())
        archive.extractall(tmp_path / "unpacked")
    for source in (tmp_path / "crowd.zip", tmp_path / "unpacked"):
        raw = read_image_tree(source)
        assert dict(zip(raw.keys, raw.names)) == labelled
        assert raw.skipped["in tie/"] == n_ties > 0
