"""A label scheme per test set: created with it, shown on the labelling page, read in any
spelling ferml.labels knows, refused outside it with file, line and value, exported in it."""
from __future__ import annotations

import csv
import io
import re

import pytest
from django.core.management import CommandError

from annotator.image_import import import_testset
from annotator.models import Vote
from annotator.testsets import check_label_scheme
from annotator.vote_import import import_votes
from core.errors import InputError

from .helpers import login, run, write_faces

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def emotions(tmp_path, fer_faces):
    write_faces(tmp_path / "em", fer_faces[:3], subfolders=False)
    run("import_testset", str(tmp_path / "em"), "--name", "emotions", "--labels", "affect8",
        "--extras", "unsure,NF")
    from annotator.models import TestSet

    return TestSet.objects.get(name="emotions")


def test_the_command_creates_the_scheme_and_the_page_shows_its_keys(client, emotions, annotators):
    assert emotions.labels == ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt"]
    assert emotions.extra_answers == ["unsure", "not-a-face"]
    login(client, annotators[0])
    page = client.get("/label/emotions/").content.decode()
    buttons = re.findall(r'value="([a-z-]+)" data-key="(\w)"', page)
    assert buttons == [(label, str(n)) for n, label in enumerate(emotions.labels, start=1)] + [
        ("unsure", "0"), ("not-a-face", "x")]
    assert "Keys: 1 neutral, 2 happy, 3 sad, 4 surprise, 5 fear, 6 disgust, 7 angry, 8 contempt, 0 unsure, " \
           "x not-a-face, u undo, s skip." in page
    image = emotions.images.order_by("pk").first()
    voted = client.post("/label/emotions/vote/", {"image": image.pk, "label": "Happiness"}, **JSON)
    assert voted.json()["vote"]["label"] == "happy"
    refused = client.post("/label/emotions/vote/", {"image": image.pk, "label": "positive"}, **JSON)
    assert refused.status_code == 400
    assert refused.json()["error"] == ("Unknown label 'positive': choose neutral, happy, sad, surprise, fear, "
                                       "disgust, angry, contempt, unsure or not-a-face.")


def test_votes_in_fer_plus_spellings_are_read_and_others_refused_with_file_line_and_value(tmp_path, emotions):
    keys = sorted(emotions.images.values_list("key", flat=True))
    good = tmp_path / "good.csv"
    good.write_text("image,annotator,label\n" + "".join(
        f"{key},a{n},{label}\n" for key in keys for n, label in enumerate(["happiness", "Sadness", "anger",
                                                                           "unknown", "NF"])))
    import_votes(good, testset=emotions)
    assert sorted(set(Vote.objects.values_list("label", flat=True))) == [
        "angry", "happy", "not-a-face", "sad", "unsure"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,annotator,label\n{keys[0]},b1,happy\n{keys[1]},b1,positive\n{keys[2]},b1,{'x' * 5000}\n")
    with pytest.raises(InputError) as refused:
        import_votes(bad, testset=emotions)
    message = str(refused.value)
    assert message.startswith(f"{bad} has 2 problems; nothing from the file was imported:")
    assert "line 3: unknown label 'positive' (use neutral, happy, sad, surprise, fear, disgust, angry, " \
           "contempt, unsure or not-a-face)" in message
    assert f"line 4: unknown label '{'x' * 60}… (5,000 characters)'" in message  # not echoed whole
    assert not Vote.objects.filter(annotator__username="b1").exists()


def test_a_custom_scheme_and_its_refusals(tmp_path, fer_faces):
    scheme = check_label_scheme("custom", "Calm, Tense ,amused")
    assert scheme.custom_labels == ("calm", "tense", "amused")
    write_faces(tmp_path / "c", fer_faces[5:7], subfolders=False)
    testset = import_testset(tmp_path / "c", name="moods", scheme=scheme).testset
    assert testset.labels == ["calm", "tense", "amused"] and testset.scheme_name == "custom"
    for args, message in [
        (("custom", "calm"), "a custom label list needs 2 to 9 labels"),
        (("custom", "calm,calm"), "the custom labels repeat calm"),
        (("custom", "calm,unsure"), "'unsure' is an extra answer"),
        (("custom", ",".join(f"l{n}" for n in range(10))), "got 10"),
        (("bin3", "calm,tense"), "the label scheme is 'bin3'; choose the scheme 'custom'"),
        (("fer9",), "unknown label scheme 'fer9'"),
    ]:
        with pytest.raises(InputError, match=message):
            check_label_scheme(*args)
    with pytest.raises(CommandError, match="unknown extra answer"):
        run("import_testset", str(tmp_path / "c"), "--name", "moods2", "--extras", "maybe")


def test_exports_write_the_schemes_labels_and_extra_answers(client, emotions, staff, tmp_path):
    keys = sorted(emotions.images.values_list("key", flat=True))
    rows = [(keys[0], "a1", "happy"), (keys[0], "a2", "happy"), (keys[0], "a3", "unsure"),
            (keys[1], "a1", "sad"), (keys[1], "a2", "angry")]
    votes = tmp_path / "v.csv"
    votes.write_text("image,annotator,label\n" + "".join(",".join(r) + "\n" for r in rows))
    import_votes(votes, testset=emotions)
    login(client, staff)
    body = b"".join(client.get("/staff/export/emotions/csv/").streaming_content).decode()
    table = list(csv.DictReader(io.StringIO(body)))
    assert list(table[0]) == ["image", "majority", *emotions.labels, "unsure", "not-a-face", "n_votes",
                              "agreement", "tie"]
    first = table[0]
    assert (first["majority"], first["happy"], first["unsure"], first["n_votes"], first["agreement"]) == (
        "happy", "2", "1", "2", "1.0000")
    assert (table[1]["majority"], table[1]["tie"]) == ("", "1")
    raw = b"".join(client.get("/staff/export/emotions/votes/").streaming_content).decode()
    assert raw.splitlines()[1:] == sorted(",".join(r) for r in rows)
