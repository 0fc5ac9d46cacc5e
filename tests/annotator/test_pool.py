"""A pooled test set: N votes per image from a pool of annotators, fewest votes first,
never an image twice, held by a short lease, adaptive overlap, and the end of the queue."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotator.dashboard import pool_progress
from annotator.image_import import import_testset
from annotator.models import Image, Lease
from annotator.testsets import check_label_scheme, check_overlap, do_set_overlap
from annotator.voting import do_cast_vote, labelling_state, study_progress

from .helpers import login, write_faces

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def pool(tmp_path, fer_faces):
    """Test set 'pool': 6 real faces, 2 votes per image."""
    write_faces(tmp_path / "pool", fer_faces[200:206], subfolders=False)
    return import_testset(tmp_path / "pool", name="pool", overlap=check_overlap(2)).testset


@pytest.fixture
def crowd(django_user_model):
    return [django_user_model.objects.create_user(f"w{n}", password=f"pw-w{n}-7Qx") for n in range(5)]


def label_until_empty(user, testset, label="neutral") -> list[int]:
    served = []
    while (current := labelling_state(user, testset).current) is not None:
        served.append(current)
        do_cast_vote(user, Image.objects.select_related("testset").get(pk=current), label)
    return served


def test_every_image_gets_its_votes_and_no_more(pool, crowd):
    ann, bob, cid = crowd[:3]
    assert all(not i.complete and i.n_needed == 2 for i in pool.images.all())
    first = label_until_empty(ann, pool)
    assert sorted(first) == sorted(pool.images.values_list("pk", flat=True))  # every image once
    second = label_until_empty(bob, pool)
    assert sorted(second) == sorted(first) and second != first  # bob's own order
    assert label_until_empty(cid, pool) == []  # nothing needs a third vote
    counts = {i.pk: (i.n_votes, i.complete) for i in pool.images.all()}
    assert set(counts.values()) == {(2, True)}
    assert study_progress(pool).done == study_progress(pool).total == 6


def test_fewest_votes_first_and_a_fixed_order_per_annotator(pool, crowd):
    ann, bob = crowd[:2]
    images = list(pool.images.order_by("pk"))
    do_cast_vote(ann, images[0], "positive")
    do_cast_vote(ann, images[1], "positive")
    # bob is served the four images that have no vote before the two that have one
    served = label_until_empty(bob, pool)
    assert set(served[:4]) == {i.pk for i in images[2:]} and set(served[4:]) == {images[0].pk, images[1].pk}
    # the order is the same each time it is asked for
    do_set_overlap(pool, check_overlap(3))
    cid = crowd[2]
    assert labelling_state(cid, pool).current == labelling_state(cid, pool).current


def test_a_lease_keeps_the_last_needed_vote_for_one_annotator(pool, crowd):
    ann, bob, cid = crowd[:3]
    images = list(pool.images.order_by("pk"))
    for image in images:
        do_cast_vote(ann, image, "neutral")  # every image needs one more vote now
    bob_image = labelling_state(bob, pool).current
    cid_image = labelling_state(cid, pool).current
    assert bob_image != cid_image  # bob holds his: cid is served another one
    lease = Lease.objects.get(annotator=bob)
    assert lease.image_id == bob_image and lease.expires_at > timezone.now()
    do_cast_vote(bob, Image.objects.get(pk=bob_image), "neutral")
    assert not Lease.objects.filter(annotator=bob).exists()  # the vote ends the lease
    # A lease that ran out holds nothing: cid's image goes to the next who asks.
    Lease.objects.filter(annotator=cid).update(expires_at=timezone.now() - timedelta(seconds=1))
    served = label_until_empty(crowd[3], pool)
    assert cid_image in served and bob_image not in served and len(served) == 5


def test_a_skipped_image_comes_back_to_that_annotator_last(client, pool, crowd):
    ann = crowd[0]
    login(client, ann)
    first = client.get("/label/pool/", **JSON).json()["current"]["id"]
    state = client.get(f"/label/pool/?skip={first}", **JSON).json()
    seen = [state["current"]["id"]]
    while state["current"] is not None:
        state = client.post("/label/pool/vote/", {"image": state["current"]["id"], "label": "neutral"}, **JSON).json()
        if state["current"]:
            seen.append(state["current"]["id"])
    assert seen[-1] == first and len(seen) == 6
    assert "your votes: 6" in state["progress_text"]


def test_the_page_says_when_no_image_needs_the_annotator(client, pool, crowd):
    for user in crowd[:2]:
        label_until_empty(user, pool)
    login(client, crowd[2])
    page = client.get("/label/pool/").content.decode()
    assert "No more images need you in pool right now" in page
    assert "6 / 6 images complete" in page and "your votes: 0" in page


def test_adaptive_overlap_stops_unanimous_images_at_the_minimum(tmp_path, fer_faces, crowd):
    write_faces(tmp_path / "ad", fer_faces[210:214], subfolders=False)
    testset = import_testset(tmp_path / "ad", name="adaptive", overlap=check_overlap(2, 4)).testset
    one, two, three = testset.images.order_by("pk")[:3]
    for user in crowd[:2]:
        do_cast_vote(user, one, "positive")  # unanimous at the minimum: done
        do_cast_vote(user, two, "positive" if user == crowd[0] else "negative")
    do_cast_vote(crowd[0], three, "neutral")
    state = {i.pk: (i.n_votes, i.n_needed, i.complete) for i in testset.images.all()}
    assert state[one.pk] == (2, 0, True)
    assert state[two.pk] == (2, 2, False)  # disagreement: up to the maximum
    assert state[three.pk] == (1, 1, False)
    # The decided rule: a third vote for negative (2 to 1) still leaves one vote that could
    # tie it, so the image needs that vote; at 3 to 0 of 3 it would have stopped.
    do_set_overlap(testset, check_overlap(2, 4, "decided"))
    do_cast_vote(crowd[2], two, "negative")
    assert Image.objects.filter(pk=two.pk).values_list("n_needed", "complete").get() == (1, False)
    for user in crowd[1:3]:
        do_cast_vote(user, three, "neutral")
    assert Image.objects.filter(pk=three.pk).values_list("n_needed", "complete").get() == (0, True)
    # Under the decided rule image one (2 to 0 of 4) is open again: another 2 votes could tie
    # it, one more for positive decides it. Image three stopped at 3 of 4: one vote saved.
    progress = pool_progress(testset)
    assert (progress.complete, progress.in_progress, progress.untouched) == (1, 2, 1)
    assert (progress.votes, progress.votes_needed, progress.votes_saved) == (8, 1 + 1 + 2, 1)  # four: 2
    # image two has the votes of all three who labelled so far: only a new annotator can finish it
    assert (progress.stuck, progress.n_annotators) == (1, 3)


def test_a_new_design_recounts_every_image(pool, crowd):
    label_until_empty(crowd[0], pool)
    do_set_overlap(pool, check_overlap(1))
    assert pool.images.filter(complete=True).count() == 6
    do_set_overlap(pool, check_overlap(None))  # everyone labels everything again
    assert not pool.pooled and labelling_state(crowd[0], pool).current is None
    assert labelling_state(crowd[1], pool).current is not None


def test_a_scheme_is_fixed_when_the_test_set_is_created(tmp_path, fer_faces, pool):
    from core.errors import InputError

    write_faces(tmp_path / "more", fer_faces[220:222], subfolders=False)
    with pytest.raises(InputError, match="Test set 'pool' votes in bin3 .* a label scheme is fixed"):
        import_testset(tmp_path / "more", name="pool", scheme=check_label_scheme("affect8"))
    assert pool.images.count() == 6  # nothing was imported
