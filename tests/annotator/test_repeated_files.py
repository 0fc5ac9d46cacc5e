"""Files whose content repeats another image: skipped by name, and their votes left out.

FER2013 itself repeats faces under several rows (in the committed sample, Training row
12864 and PublicTest row 30752 hold the same pixels). A test set keeps one image per
content; the other file's name is remembered, so a votes file that names it still
imports, with those rows listed and left out, never merged into the kept image.
"""
import pytest
from django.core.management.base import CommandError
from django.urls import reverse

from annotator.image_import import import_testset
from annotator.models import Image, RepeatedFile, Vote, VoteEvent
from annotator.vote_import import import_votes

from .helpers import png_bytes, run, write_faces

pytestmark = pytest.mark.django_db

TWINS = (12864, 30752)  # FER2013 rows with identical pixels, both in tests/data


@pytest.fixture
def twin_folder(tmp_path, fer_faces):
    """Six real faces, two of them the FER2013 twins; keys fer12864.png, fer30752.png, ..."""
    faces = [f for f in fer_faces if f.row in TWINS] + [f for f in fer_faces[150:154]]
    assert len(faces) == 6 and (faces[0].pixels == faces[1].pixels).all()
    folder = tmp_path / "twins"
    write_faces(folder, faces, subfolders=False)
    return folder


def votes_csv(tmp_path, rows, name="votes.csv"):
    path = tmp_path / name
    path.write_text("image,annotator,label\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def stored():
    return set(Vote.objects.values_list("image__key", "annotator__username", "label"))


def test_the_repeat_is_skipped_by_name_and_remembered(twin_folder):
    out, err = run("import_testset", str(twin_folder), "--name", "twins")
    assert "Imported 5 image(s)" in out and "1 duplicate" in out
    assert ("duplicate fer30752.png: same content as fer12864.png; votes that name it will be "
            "left out") in err
    [repeat] = RepeatedFile.objects.all()
    assert (repeat.testset.name, repeat.key, repeat.image.key) == ("twins", "fer30752.png",
                                                                    "fer12864.png")
    run("import_testset", str(twin_folder), "--name", "twins")  # again: nothing new
    assert RepeatedFile.objects.count() == 1 and Image.objects.count() == 5


def test_votes_naming_the_repeat_are_listed_and_left_out_the_rest_imports(twin_folder, tmp_path):
    run("import_testset", str(twin_folder), "--name", "twins")
    other = Image.objects.exclude(key="fer12864.png").order_by("key").first().key
    rows = [
        ("fer12864.png", "a01", "negative"), ("fer12864.png", "a02", "negative"),
        ("fer30752.png", "a01", "neutral"), ("fer30752.png", "a03", "negative"),
        (other, "a02", "positive"),
    ]
    out, err = run("import_votes", str(votes_csv(tmp_path, rows)))
    assert "Imported 3 vote row(s) into test set 'twins': 3 new" in out
    assert ("2 row(s) left out: they name files skipped at import as repeats of another "
            "image") in out
    assert err.splitlines() == [
        "line 4: image 'fer30752.png' repeats 'fer12864.png' (same content, skipped when the "
        "images were imported); the vote of 'a01' on it is left out",
        "line 5: image 'fer30752.png' repeats 'fer12864.png' (same content, skipped when the "
        "images were imported); the vote of 'a03' on it is left out",
    ]
    # nothing merged: the kept image holds exactly its own rows; a03 only voted on the repeat
    assert stored() == {rows[0], rows[1], rows[4]}
    assert not Vote.objects.filter(annotator__username="a03").exists()
    again, _ = run("import_votes", str(votes_csv(tmp_path, rows)))
    assert "0 new, 3 already stored" in again and VoteEvent.objects.count() == 3


def test_real_problems_still_stop_the_whole_file(twin_folder, tmp_path):
    run("import_testset", str(twin_folder), "--name", "twins")
    rows = [("fer12864.png", "a01", "negative"), ("fer30752.png", "a01", "happy"),
            ("ghost.png", "a01", "neutral")]
    with pytest.raises(CommandError) as caught:
        run("import_votes", str(votes_csv(tmp_path, rows)))
    message = str(caught.value)
    assert "line 3: unknown label 'happy'" in message  # a row naming the repeat is checked too
    assert "line 4: image 'ghost.png' is not in test set 'twins'" in message
    assert "nothing from the file was imported" in message and not Vote.objects.exists()


def test_a_repeated_name_that_later_gets_content_of_its_own_is_an_image(twin_folder, tmp_path,
                                                                          fer_faces):
    run("import_testset", str(twin_folder), "--name", "twins")
    (twin_folder / "fer30752.png").write_bytes(png_bytes(fer_faces[200].pixels))
    run("import_testset", str(twin_folder), "--name", "twins")
    assert not RepeatedFile.objects.exists()
    report = import_votes(votes_csv(tmp_path, [("fer30752.png", "a01", "neutral")]),
                          testset="twins")
    assert report.left_out == [] and stored() == {("fer30752.png", "a01", "neutral")}


def test_the_upload_page_lists_the_rows_left_out(twin_folder, tmp_path, client, staff):
    import_testset(twin_folder, name="twins")
    client.force_login(staff)
    path = votes_csv(tmp_path, [("fer12864.png", "a01", "negative"),
                                ("fer30752.png", "a01", "neutral")])
    with path.open("rb") as upload:
        response = client.post(reverse("annotator:import"),
                               {"csv_file": upload, "testset": "twins"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "1 row(s) left out" in page
    assert "line 3: image &#x27;fer30752.png&#x27; repeats &#x27;fer12864.png&#x27;" in page
    assert stored() == {("fer12864.png", "a01", "negative")}
