"""The next image to label: each annotator's own order, kept per server process and checked
against the test set's images, and a vote whose queries do not grow with the test set."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator import voting
from annotator.image_import import import_testset
from annotator.models import Image, Vote
from annotator.voting import do_cast_vote, labelling_state, upcoming_images

from .helpers import annotator_order, login, write_faces

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


def all_ids(testset):
    return list(Image.objects.filter(testset=testset).values_list("id", flat=True))


def expected_next(annotator, testset, after=None, count=2):
    """The definition, image by image: the annotator's order as a circle, starting behind
    ``after``, without the images they labelled."""
    order = annotator_order(annotator, all_ids(testset))
    if after in order:
        at = order.index(after) + 1
        order = order[at:] + order[:at]
    done = set(Vote.objects.filter(annotator=annotator).values_list("image_id", flat=True))
    return [i for i in order if i not in done][:count]


def test_the_next_images_follow_the_definition(study, annotators):
    ann = annotators[0]
    order = annotator_order(ann, all_ids(study))
    for image in order[:3]:
        do_cast_vote(ann, Image.objects.get(pk=image), "neutral")
    for after in [None, *order, 10**30, -1]:
        assert upcoming_images(ann, study, after=after, count=3) == expected_next(ann, study, after, 3)


def test_the_kept_order_follows_new_and_deleted_images(study, annotators, tmp_path, fer_faces):
    ann = annotators[0]
    assert sorted(upcoming_images(ann, study, count=100)) == sorted(all_ids(study))
    write_faces(tmp_path / "more", fer_faces[200:203], subfolders=False)
    import_testset(tmp_path / "more", name="study")
    assert upcoming_images(ann, study, count=100) == expected_next(ann, study, count=100)
    assert len(upcoming_images(ann, study, count=100)) == 11
    gone = Image.objects.filter(testset=study).order_by("key").first()
    gone.delete()
    assert gone.pk not in upcoming_images(ann, study, count=100)
    assert labelling_state(ann, study).progress.total == 10


def test_every_added_or_removed_image_raises_the_test_sets_images_version(study, tmp_path, fer_faces):
    def version():
        study.refresh_from_db(fields=["images_version"])
        return study.images_version

    before = version()
    write_faces(tmp_path / "more", fer_faces[200:203], subfolders=False)
    import_testset(tmp_path / "more", name="study")
    assert version() == before + 3
    Image.objects.filter(testset=study).order_by("key").first().delete()
    assert version() == before + 4
    two = Image.objects.filter(testset=study).order_by("key").values_list("pk", flat=True)[:2]
    Image.objects.filter(pk__in=list(two)).delete()  # a queryset's delete
    assert version() == before + 6
    import_testset(tmp_path / "more", name="study")  # nothing new: already present
    assert version() == before + 6


def test_a_long_run_of_labelled_images_is_skipped_in_one_read(study, annotators, monkeypatch):
    """Past the candidates asked about one batch at a time, the annotator's votes are read once."""
    monkeypatch.setattr(voting, "_CANDIDATE_BATCHES", (1, 2))
    ann = annotators[0]
    order = annotator_order(ann, all_ids(study))
    for image in order[:6]:
        do_cast_vote(ann, Image.objects.get(pk=image), "positive")
    assert upcoming_images(ann, study, count=2) == order[6:8]
    assert upcoming_images(ann, study, after=order[7], count=2) == [order[6], order[7]]


def test_a_vote_asks_as_many_questions_in_a_large_test_set_as_in_a_small_one(
        client, annotators, tmp_path, fer_faces):
    def questions_per_vote(name, faces):
        write_faces(tmp_path / name, faces, subfolders=False)
        import_testset(tmp_path / name, name=name)
        state = client.get(f"/label/{name}/", **JSON).json()
        counts = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as captured:
                state = client.post(f"/label/{name}/vote/", {"image": state["current"]["id"],
                                                              "label": "neutral"}, **JSON).json()
            counts.append(len(captured))
        return counts

    login(client, annotators[0])
    small, large = questions_per_vote("small", fer_faces[:4]), questions_per_vote("large", fer_faces[4:64])
    # session, user, image; the vote and its event (in a savepoint here); the order's
    # version, the next candidates, the progress
    assert small == large and max(large) <= 10
