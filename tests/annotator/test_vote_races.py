"""Vote writes under races: never a duplicate row, never an error, every change recorded."""
import threading

import pytest
from django.db import connection

from annotator import models, voting
from annotator.models import Image, Vote, VoteEvent
from annotator.voting import do_cast_vote


@pytest.mark.django_db
def test_a_vote_stored_by_another_request_just_before_ours_is_changed_not_doubled(monkeypatch, study, annotators):
    """Another request's insert wins: ours meets the constraint and lands on its row."""
    ann = annotators[0]
    image = study.images.first()
    real_insert, raced = voting._insert_new_vote, []

    def racing_insert(*args):
        if not raced:
            raced.append(True)
            Vote.objects.bulk_create([Vote(image=image, annotator=ann, label="negative")])
        return real_insert(*args)

    monkeypatch.setattr(voting, "_insert_new_vote", racing_insert)
    result = do_cast_vote(ann, image, "positive")
    assert raced and result.action == "change"
    assert list(Vote.objects.values_list("label", flat=True)) == ["positive"]
    change = VoteEvent.objects.get()
    assert (change.action, change.previous_label) == ("change", "negative")


@pytest.mark.django_db
def test_a_vote_undone_between_our_insert_and_lookup_is_cast_again(monkeypatch, study, annotators):
    ann = annotators[0]
    image = study.images.first()
    Vote.objects.create(image=image, annotator=ann, label="negative")
    real_insert, calls = voting._insert_new_vote, []

    def insert_then_undo(*args):
        vote = real_insert(*args)
        calls.append(vote)
        if len(calls) == 1:
            Vote.objects.filter(image=image, annotator=ann).delete()  # the other request's undo
        return vote

    monkeypatch.setattr(voting, "_insert_new_vote", insert_then_undo)
    result = do_cast_vote(ann, image, "positive")
    assert calls[0] is None and result.action == "cast" and len(calls) == 2
    assert list(Vote.objects.values_list("label", flat=True)) == ["positive"]
    assert Vote.objects.get().pk == result.vote.pk


@pytest.mark.django_db(transaction=True)
def test_simultaneous_submissions_from_many_threads(django_user_model):
    testset = models.TestSet.objects.create(name="race")
    image = Image.objects.create(testset=testset, key="a.png", file="race/a.png", sha256="0" * 64, width=1, height=1)
    user = django_user_model.objects.create_user("racer")
    labels = ["positive", "neutral"] * 5
    barrier, errors = threading.Barrier(len(labels)), []

    def submit(label):
        try:
            barrier.wait()
            do_cast_vote(user, image, label)
        except Exception as exc:  # any error is a failure of the write path
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(label,)) for label in labels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Vote.objects.filter(image=image, annotator=user).count() == 1
    events = list(VoteEvent.objects.order_by("id").values_list("action", "label", "previous_label"))
    assert events[0][0] == "cast" and [e[0] for e in events[1:]] == ["change"] * (len(events) - 1)
    # The history is a chain: each change starts from the label before it, ending at the stored one.
    for before, after in zip(events, events[1:]):
        assert after[2] == before[1]
    assert events[-1][1] == Vote.objects.get().label
