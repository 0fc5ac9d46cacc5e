"""A stored study of real faces with votes, and a snapshot of everything stored.

The faces come from the committed FER2013 sample through the annotator tests' own
fixture and helpers, imported here rather than copied.
"""
from __future__ import annotations

import hashlib

import pytest

from annotator.image_import import import_testset
from annotator.models import Image, TestSet, Vote, VoteEvent
from annotator.voting import do_cast_vote
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.annotator.helpers import write_faces

STUDY = "study"
ANNOTATOR = ("ann", "pw-ann-7Qx")
OTHERS = ("zoe_other", "yan_other")  # names that must never show up on ann's pages
STAFF = ("boss", "pw-boss-7Qx")


@pytest.fixture
def study(db, tmp_path, fer_faces):  # noqa: F811
    """Test set ``study``: 8 real faces; ann voted on 3, zoe_other and yan_other on all 8.

    zoe_other and yan_other agree on 6 images, so a majority and a benchmark exist.
    """
    from django.contrib.auth import get_user_model

    users = get_user_model()
    folder = tmp_path / "study-faces"
    write_faces(folder, fer_faces[100:108], subfolders=False)
    testset = import_testset(folder, name=STUDY).testset
    images = list(testset.images.order_by("key"))
    ann = users.objects.create_user(ANNOTATOR[0], password=ANNOTATOR[1])
    zoe, yan = (users.objects.create_user(name, password="pw-" + name) for name in OTHERS)
    labels = ["negative", "neutral", "positive"]
    for n, image in enumerate(images):
        do_cast_vote(zoe, image, labels[n % 3], time_spent_ms=900 + n)
        do_cast_vote(yan, image, labels[n % 3] if n < 6 else labels[(n + 1) % 3], time_spent_ms=700 + n)
        if n < 3:
            do_cast_vote(ann, image, labels[(n + 2) % 3], time_spent_ms=500 + n)
    users.objects.create_user(STAFF[0], password=STAFF[1], is_staff=True, is_superuser=True)
    return testset


def file_sha256(image: Image) -> str:
    with image.file.open("rb") as fileobj:
        return hashlib.sha256(fileobj.read()).hexdigest()


def snapshot() -> dict:
    """Everything a bad input must leave alone: test sets, images (and their files), votes, history."""
    from django.contrib.auth import get_user_model

    return {
        "testsets": sorted(TestSet.objects.values_list("name", flat=True)),
        "images": sorted(
            (i.testset.name, i.key, i.sha256, i.width, i.height, i.file.name, file_sha256(i))
            for i in Image.objects.select_related("testset")
        ),
        "votes": sorted(Vote.objects.values_list(
            "image__key", "annotator__username", "label", "time_spent_ms", "created_at", "updated_at"
        )),
        "events": list(VoteEvent.objects.order_by("id").values_list(
            "image__key", "annotator__username", "action", "label", "previous_label"
        )),
        "users": sorted(get_user_model().objects.values_list("username", flat=True)),
    }
