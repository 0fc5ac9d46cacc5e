"""import_votes: all or nothing, idempotent, every bad row named."""
import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from annotator.image_import import import_testset
from annotator.models import Image, Vote, VoteEvent

from .helpers import run, write_faces

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(study):
    return list(Image.objects.filter(testset=study).order_by("key").values_list("key", flat=True))


def write_csv(tmp_path, text, name="votes.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def good_rows(keys):
    return [(k, a, label) for k, a, label in [
        (keys[0], "a01", "positive"), (keys[0], "a02", "positive"), (keys[0], "a03", "neutral"),
        (keys[1], "a01", "negative"), (keys[1], "a02", "neutral"),
        (keys[2], "a03", "positive"),
    ]]


def as_csv(rows, header="image,annotator,label"):
    return header + "\n" + "".join(",".join(r) + "\n" for r in rows)


def stored():
    return set(Vote.objects.values_list("image__key", "annotator__username", "label"))


def test_votes_are_imported_with_new_annotators(tmp_path, keys):
    rows = good_rows(keys)
    out, _ = run("import_votes", str(write_csv(tmp_path, as_csv(rows))))
    assert "6 new" in out and "a01, a02, a03" in out
    assert stored() == set(rows)
    for user in get_user_model().objects.filter(username__in=["a01", "a02", "a03"]):
        assert not user.has_usable_password()
    assert VoteEvent.objects.filter(action="import").count() == 6
    assert set(VoteEvent.objects.values_list("label", flat=True)) == {"positive", "neutral", "negative"}


def test_reimport_changes_nothing(tmp_path, keys):
    path = write_csv(tmp_path, as_csv(good_rows(keys)))
    run("import_votes", str(path))
    events = VoteEvent.objects.count()
    out, _ = run("import_votes", str(path), "--testset", "study")
    assert "0 new, 6 already stored" in out
    assert stored() == set(good_rows(keys)) and VoteEvent.objects.count() == events


def test_tolerant_of_bom_case_spaces_and_extra_columns(tmp_path, keys):
    text = "\ufeffImage, Annotator ,LABEL,comment\n" f"{keys[0]}, a01 , Positive ,fine\n"
    run("import_votes", str(write_csv(tmp_path, text)))
    assert stored() == {(keys[0], "a01", "positive")}


def test_identical_repeated_rows_count_once(tmp_path, keys):
    rows = good_rows(keys)
    out, _ = run("import_votes", str(write_csv(tmp_path, as_csv(rows + rows[:2]))))
    assert "2 repeated line(s)" in out
    assert Vote.objects.count() == 6


BAD_FILES = {
    "missing column": ("image,annotator\n{k0},a01\n", "lacks the column(s) label"),
    "unknown label": ("{good}{k1},a09,happy\n", "line 8: unknown label 'happy'"),
    "unknown image": ("{good}nope.png,a09,neutral\n", "line 8: image 'nope.png' is not in test set 'study'"),
    "conflicting rows": ("{good}{k0},a01,negative\n", "line 8: annotator 'a01' labels image '{k0}' 'negative', but line 2 says 'positive'"),
    "field count": ("{good}{k1},a09\n", "line 8: 2 field(s), but the header has 3"),
    "bad name": ("{good}{k1},a 09,neutral\n", "line 8: 'a 09' is not a valid annotator name"),
    "empty image": ("{good},a09,neutral\n", "line 8: the image column is empty"),
    "empty file": ("", "is empty"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_row_names_itself_and_stores_nothing(tmp_path, keys, case):
    template, message = BAD_FILES[case]
    good = as_csv(good_rows(keys))
    text = template.format(good=good, k0=keys[0], k1=keys[1])
    users_before = get_user_model().objects.count()
    with pytest.raises(CommandError) as excinfo:
        run("import_votes", str(write_csv(tmp_path, text)))
    assert message.format(k0=keys[0]) in str(excinfo.value)
    assert "Nothing from the file was imported" in str(excinfo.value) or case in ("missing column", "empty file")
    assert Vote.objects.count() == 0 and VoteEvent.objects.count() == 0
    assert get_user_model().objects.count() == users_before


def test_wrong_encoding_is_named(tmp_path, keys):
    text = as_csv(good_rows(keys)) + f"{keys[3]},jos\u00e9,neutral\n"
    with pytest.raises(CommandError, match=r"not UTF-8 text \(line 8"):
        run("import_votes", str(write_csv(tmp_path, text, encoding="latin-1")))
    assert Vote.objects.count() == 0


def test_several_problems_are_all_listed(tmp_path, keys):
    text = as_csv(good_rows(keys)) + f"{keys[3]},a01,meh\nghost.png,a01,neutral\n"
    with pytest.raises(CommandError) as excinfo:
        run("import_votes", str(write_csv(tmp_path, text)))
    message = str(excinfo.value)
    assert "2 problems" in message and "line 8" in message and "line 9" in message
    assert Vote.objects.count() == 0


def test_contradicting_a_stored_vote_needs_overwrite(tmp_path, keys):
    run("import_votes", str(write_csv(tmp_path, as_csv(good_rows(keys)))))
    changed = write_csv(tmp_path, as_csv([(keys[0], "a01", "negative"), (keys[4], "a01", "neutral")]), "v2.csv")
    with pytest.raises(CommandError, match="has already labelled image .* 'positive', the file says 'negative'"):
        run("import_votes", str(changed))
    assert (keys[4], "a01", "neutral") not in stored()
    out, _ = run("import_votes", str(changed), "--overwrite")
    assert "1 new" in out and "1 changed" in out
    assert (keys[0], "a01", "negative") in stored() and Vote.objects.count() == 7
    event = VoteEvent.objects.filter(action="import", previous_label="positive").get()
    assert (event.annotator.username, event.label) == ("a01", "negative")


def test_testset_must_be_named_when_there_are_several(tmp_path, keys, fer_faces):
    write_faces(tmp_path / "other", fer_faces[200:202], subfolders=False)
    import_testset(tmp_path / "other", name="other")
    path = write_csv(tmp_path, as_csv(good_rows(keys)))
    with pytest.raises(CommandError, match="several test sets \\(other, study\\)"):
        run("import_votes", str(path))
    with pytest.raises(CommandError, match="no test set named 'nope'"):
        run("import_votes", str(path), "--testset", "nope")
    with pytest.raises(CommandError, match="image .* is not in test set 'other'"):
        run("import_votes", str(path), "--testset", "other")
    run("import_votes", str(path), "--testset", "study")
    assert stored() == set(good_rows(keys))


def test_missing_file_is_a_clear_error(tmp_path, study):
    with pytest.raises(CommandError, match="does not exist"):
        run("import_votes", str(tmp_path / "nothing.csv"))


def test_staff_uploads_votes_from_the_web(client, staff, keys, tmp_path):
    client.force_login(staff)
    path = write_csv(tmp_path, as_csv(good_rows(keys)))
    with path.open("rb") as fileobj:
        response = client.post("/staff/import/", {"csv_file": fileobj, "testset": "study"}, follow=True)
    assert "6 new" in response.content.decode()
    assert stored() == set(good_rows(keys))
    bad = write_csv(tmp_path, as_csv(good_rows(keys)) + f"{keys[1]},a09,happy\n", "bad.csv")
    Vote.objects.all().delete()
    with bad.open("rb") as fileobj:
        response = client.post("/staff/import/", {"csv_file": fileobj, "testset": "study"})
    assert "line 8: unknown label" in response.content.decode()
    assert Vote.objects.count() == 0
