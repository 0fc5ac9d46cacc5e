"""An annotator never sees anyone else's votes or the majority, anywhere."""
import pytest
from django.test import Client

from annotator.image_import import import_testset
from annotator.models import Image, Vote
from annotator.voting import do_cast_vote

from .helpers import login, png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def telling_study(tmp_path, fer_faces, annotators, staff):
    """Keys that would give the answer away, and annotator 'ann' with votes on every image."""
    folder = tmp_path / "telling"
    for n, face in enumerate(fer_faces[:6]):
        path = folder / "secretpositive" / f"face{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(face.pixels))
    testset = import_testset(folder, name="telling").testset
    ann = annotators[0]
    for image in testset.images.all():
        do_cast_vote(ann, image, "positive", time_spent_ms=1234)
    return testset


def bob_client(annotators):
    client = Client()
    return login(client, annotators[1])


def test_bob_sees_neither_anns_votes_nor_a_majority(telling_study, annotators):
    bob = bob_client(annotators)
    base = "/label/telling/"
    image = Image.objects.filter(testset=telling_study).first()
    responses = {
        "home": bob.get("/"),
        "page": bob.get(base),
        "page of an image ann labelled": bob.get(f"{base}?image={image.pk}"),
        "json": bob.get(base, HTTP_ACCEPT="application/json"),
        "vote": bob.post(f"{base}vote/", {"image": image.pk, "label": "negative"}, HTTP_ACCEPT="application/json"),
        "undo": bob.post(f"{base}undo/", HTTP_ACCEPT="application/json"),
    }
    for name, response in responses.items():
        if response.status_code == 302:
            response = bob.get(response["Location"])
        body = response.content.decode()
        assert response.status_code == 200, name
        assert "ann" not in body.replace("annotator", ""), name
        assert "majority" not in body.lower() and "agreement" not in body.lower(), name
        assert "secretpositive" not in body, name  # keys can give the label away
        assert "1234" not in body, name
    state = responses["json"].json()
    assert set(state) == {"current", "preload", "progress"}
    assert state["progress"] == {"done": 0, "total": 6}  # ann's 6 votes are not bob's progress
    assert set(responses["vote"].json()) == {"vote", "current", "preload", "progress"}
    assert responses["vote"].json()["vote"]["label"] == "negative"  # only bob's own label
    # Bob's undo removed bob's vote, never ann's.
    assert Vote.objects.filter(annotator=annotators[0]).count() == 6
    assert not Vote.objects.filter(annotator=annotators[1]).exists()


def test_staff_pages_exports_and_admin_are_closed_to_annotators(telling_study, annotators):
    bob = bob_client(annotators)
    for url in ["/staff/", "/staff/import/", "/staff/export/telling/csv/",
                "/staff/export/telling/zip/", "/staff/export/telling/votes/",
                "/staff/export/telling/zip/?balanced=on&seed=1"]:
        response = bob.get(url)
        assert response.status_code == 403, url
        assert b"positive" not in response.content
    for url in ["/admin/annotator/vote/", "/admin/annotator/voteevent/", "/admin/"]:
        response = bob.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
