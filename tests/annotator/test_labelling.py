"""The labelling page: two annotators, form posts (no JavaScript) and the fetch endpoint."""
import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from annotator.image_import import import_testset
from annotator.models import Vote, VoteEvent
from annotator.vote_import import import_votes
from annotator.voting import LABEL_KEYS, do_cast_vote, upcoming_images
from core.errors import InputError

from .helpers import login, write_faces

pytestmark = pytest.mark.django_db

LABEL_URL = "/label/study/"
VOTE_URL = "/label/study/vote/"
UNDO_URL = "/label/study/undo/"
JSON = {"HTTP_ACCEPT": "application/json"}


def shown_image(response) -> int:
    return int(re.search(r'name="image" value="(\d+)"', response.content.decode()).group(1))


def shown_token(response) -> str:
    return re.search(r'name="shown" value="([^"]+)"', response.content.decode()).group(1)


def votes_of(user):
    return dict(Vote.objects.filter(annotator=user).values_list("image_id", "label"))


def test_page_shows_an_image_the_keys_and_progress(client, study, annotators):
    login(client, annotators[0])
    page = client.get(LABEL_URL).content.decode()
    assert 'class="face"' in page and f"{LABEL_URL}images/" in page
    assert '<progress value="0" max="8">' in page and "0 / 8" in page
    for key, label in [("1", "negative"), ("2", "neutral"), ("3", "positive")]:
        assert f'value="{label}" data-key="{key}"' in page
    assert 'data-key="u"' in page and 'data-key="s"' in page
    assert "data-preload=" in page
    assert "annotator/label.js" in page


def test_scaled_faces_stay_pixel_sharp():
    css = (Path(settings.BASE_DIR) / "static/annotator/label.css").read_text()
    rule = re.search(r"img\.face\s*\{([^}]*)\}", css).group(1)
    assert "image-rendering: pixelated" in rule


def test_each_annotator_has_an_own_stable_order(study, annotators):
    ann, bob = annotators
    order_ann = upcoming_images(ann, study, count=8)
    order_bob = upcoming_images(bob, study, count=8)
    assert sorted(order_ann) == sorted(order_bob) == sorted(study.images.values_list("id", flat=True))
    assert order_ann != order_bob
    assert upcoming_images(ann, study, count=8) == order_ann


def test_labelling_every_image_with_plain_form_posts(client, study, annotators):
    """No JavaScript: every vote is a form post and a redirect to the next image."""
    ann = annotators[0]
    login(client, ann)
    expected_order = upcoming_images(ann, study, count=8)
    response = client.get(LABEL_URL)
    seen = []
    for n in range(8):
        image = shown_image(response)
        seen.append(image)
        label = ["negative", "neutral", "positive"][n % 3]
        posted = client.post(VOTE_URL, {"image": image, "label": label, "shown": shown_token(response)})
        assert posted.status_code == 302 and posted["Location"] == f"{LABEL_URL}?after={image}"
        response = client.get(posted["Location"])
        assert f"{n + 1} / 8" in response.content.decode()
    assert seen == expected_order
    assert "labelled every image" in response.content.decode()
    assert list(votes_of(ann).values()).count("negative") == 3
    # The page stamps when the image was shown, so form posts are timed too.
    assert Vote.objects.filter(annotator=ann, time_spent_ms__isnull=False).count() == 8


def test_two_annotators_label_through_the_json_endpoint(client, study, annotators):
    """What label.js does for the keys 1 / 2 / 3: post, and show the next image it returns."""
    ann, bob = annotators
    bob_client = Client()
    login(client, ann)
    login(bob_client, bob)
    for c, user, keys in [(client, ann, "1231"), (bob_client, bob, "3322")]:
        state = c.get(LABEL_URL, **JSON).json()
        assert state["progress"] == {"done": 0, "total": 8}
        for n, key in enumerate(keys):
            current = state["current"]
            assert current["src"] == f"{LABEL_URL}images/{current['id']}/"
            preload = state["preload"]
            label = LABEL_KEYS[key]  # label.js sends the label its key stands for
            state = c.post(VOTE_URL, {"image": current["id"], "label": label, "time_spent_ms": 700 + n}, **JSON).json()
            assert state["vote"] == {"image": current["id"], "label": label, "action": "cast"}
            assert state["progress"]["done"] == n + 1
            assert state["current"]["id"] == preload["id"]  # the preloaded image comes next
    assert sorted(votes_of(ann).values()) == ["negative", "negative", "neutral", "positive"]
    assert sorted(votes_of(bob).values()) == ["neutral", "neutral", "positive", "positive"]
    assert sorted(Vote.objects.filter(annotator=bob).values_list("time_spent_ms", flat=True)) == [700, 701, 702, 703]
    assert VoteEvent.objects.filter(action="cast").count() == 8


def test_double_submission_keeps_one_vote(client, study, annotators):
    login(client, annotators[0])
    image = client.get(LABEL_URL, **JSON).json()["current"]["id"]
    first = client.post(VOTE_URL, {"image": image, "label": "positive"}, **JSON)
    second = client.post(VOTE_URL, {"image": image, "label": "positive"}, **JSON)
    assert first.json()["vote"]["action"] == "cast" and second.json()["vote"]["action"] == "unchanged"
    assert Vote.objects.filter(image_id=image).count() == 1
    assert VoteEvent.objects.filter(image_id=image).count() == 1


def test_changing_a_vote_keeps_one_row_and_records_the_change(client, study, annotators):
    ann = annotators[0]
    login(client, ann)
    image = client.get(LABEL_URL, **JSON).json()["current"]["id"]
    client.post(VOTE_URL, {"image": image, "label": "positive"}, **JSON)
    page = client.get(f"{LABEL_URL}?image={image}")  # back to an image already labelled
    assert shown_image(page) == image
    result = client.post(VOTE_URL, {"image": image, "label": "neutral"}, **JSON).json()
    assert result["vote"]["action"] == "change"
    assert votes_of(ann) == {image: "neutral"}
    change = VoteEvent.objects.get(action="change")
    assert (change.image_id, change.label, change.previous_label) == (image, "neutral", "positive")


def test_concurrent_style_race_lands_on_the_existing_vote(study, annotators):
    """The get_or_create path: a vote that appeared meanwhile is updated, not duplicated."""
    ann = annotators[0]
    image = study.images.first()
    Vote.objects.create(image=image, annotator=ann, label="negative")
    result = do_cast_vote(ann, image, "positive", time_spent_ms=5)
    assert result.action == "change" and Vote.objects.filter(image=image).count() == 1


def test_undo_removes_the_last_vote_and_shows_its_image_again(client, study, annotators):
    ann, bob = annotators
    do_cast_vote(bob, study.images.first(), "neutral")
    login(client, ann)
    state = client.get(LABEL_URL, **JSON).json()
    first = state["current"]["id"]
    state = client.post(VOTE_URL, {"image": first, "label": "positive"}, **JSON).json()
    second = state["current"]["id"]
    client.post(VOTE_URL, {"image": second, "label": "negative"}, **JSON)
    undone = client.post(UNDO_URL, **JSON).json()
    assert undone["undone"] == {"image": second, "label": "negative"}
    assert undone["current"]["id"] == second and undone["progress"]["done"] == 1
    assert votes_of(ann) == {first: "positive"}
    # Without JavaScript: a form post, then the undone image is shown again.
    response = client.post(UNDO_URL)
    assert response["Location"] == f"{LABEL_URL}?image={first}"
    assert shown_image(client.get(response["Location"])) == first
    assert votes_of(ann) == {}
    assert list(VoteEvent.objects.filter(action="undo").values_list("image_id", "previous_label")) == [
        (second, "negative"), (first, "positive")
    ]
    assert client.post(UNDO_URL, **JSON).json()["undone"] is None
    assert Vote.objects.filter(annotator=bob).count() == 1  # someone else's vote is never undone


def test_skip_moves_on_and_the_skipped_image_comes_back_last(client, study, annotators):
    ann = annotators[0]
    login(client, ann)
    order = upcoming_images(ann, study, count=8)
    page = client.get(LABEL_URL)
    skip = re.search(r'class="skip" data-key="s" href="([^"]+)"', page.content.decode()).group(1)
    assert skip == f"{LABEL_URL}?skip={order[0]}"
    assert shown_image(client.get(skip)) == order[1]
    state = client.get(f"{LABEL_URL}?skip={order[0]}", **JSON).json()
    for image in order[1:]:
        assert state["current"]["id"] == image
        state = client.post(VOTE_URL, {"image": image, "label": "neutral"}, **JSON).json()
    assert state["current"]["id"] == order[0] and state["preload"] is None


def test_bad_votes_are_clear_errors(client, study, annotators):
    login(client, annotators[0])
    image = study.images.first().pk
    bad_label = client.post(VOTE_URL, {"image": image, "label": "happy"}, **JSON)
    assert bad_label.status_code == 400 and "Unknown label 'happy'" in bad_label.json()["error"]
    missing = client.post(VOTE_URL, {"image": 999999, "label": "neutral"}, **JSON)
    assert missing.status_code == 400 and "No such image" in missing.json()["error"]
    as_form = client.post(VOTE_URL, {"image": image, "label": "happy"}, follow=True)
    assert "Unknown label" in as_form.content.decode()
    assert not Vote.objects.exists()
    assert client.get("/label/nope/").status_code == 404


def test_csrf_protection_stays_on(study, annotators):
    strict = Client(enforce_csrf_checks=True)
    login(strict, annotators[0])
    image = study.images.first().pk
    assert strict.post(VOTE_URL, {"image": image, "label": "neutral"}, **JSON).status_code == 403
    page = strict.get(LABEL_URL)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    ok = strict.post(VOTE_URL, {"image": image, "label": "neutral"}, HTTP_X_CSRFTOKEN=token, **JSON)
    assert ok.status_code == 200 and Vote.objects.count() == 1


def test_anonymous_visitors_are_sent_to_login(client, study):
    image = study.images.first().pk
    for response in [client.get(LABEL_URL), client.get(f"{LABEL_URL}images/{image}/"), client.get("/"),
                     client.post(VOTE_URL, {"image": image, "label": "neutral"}), client.post(UNDO_URL)]:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert not Vote.objects.exists()


def test_images_are_served_to_logged_in_users_only(client, study, annotators):
    image = study.images.first()
    assert client.get(f"{LABEL_URL}images/{image.pk}/").status_code == 302
    login(client, annotators[0])
    response = client.get(f"{LABEL_URL}images/{image.pk}/")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    with image.file.open("rb") as fileobj:
        assert b"".join(response.streaming_content) == fileobj.read()
    assert client.get(f"{LABEL_URL}images/999999/").status_code == 404


def test_an_image_is_served_only_under_its_own_test_set(client, study, annotators, tmp_path, fer_faces):
    write_faces(tmp_path / "other", fer_faces[300:302], subfolders=False)
    other = import_testset(tmp_path / "other", name="other").testset.images.first()
    login(client, annotators[0])
    assert client.get(f"/label/other/images/{other.pk}/").status_code == 200
    assert client.get(f"{LABEL_URL}images/{other.pk}/").status_code == 404  # not an image of 'study'
    assert client.get(f"/images/{other.pk}/").status_code == 404  # the old unscoped address is gone


def test_the_page_and_the_csv_accept_the_same_label_spellings(client, study, annotators):
    """One definition of a label (annotator.voting.parse_label) for the web vote and import_votes."""
    login(client, annotators[0])
    image = study.images.order_by("key").first()
    def imported(spelling: str, annotator: str) -> str:
        csv = io.BytesIO(f"image,annotator,label\n{image.key},{annotator},{spelling}\n".encode())
        csv.name = "votes.csv"
        import_votes(csv, testset=study)
        return Vote.objects.get(image=image, annotator__username=annotator).label

    for n, (spelling, stored) in enumerate([(" Positive ", "positive"), ("NEUTRAL", "neutral")]):
        voted = client.post(VOTE_URL, {"image": image.pk, "label": spelling}, **JSON)
        assert voted.status_code == 200 and voted.json()["vote"]["label"] == stored
        assert imported(spelling, f"zed{n}") == stored
    for spelling in ["3", "1", "happy", "pos"]:
        refused = client.post(VOTE_URL, {"image": image.pk, "label": spelling}, **JSON)
        assert refused.status_code == 400 and f"Unknown label {spelling!r}" in refused.json()["error"]
        with pytest.raises(InputError, match=f"unknown label {spelling!r}"):
            imported(spelling, "zed9")


def test_home_sends_each_user_to_the_right_place(client, study, annotators, staff, tmp_path, fer_faces):
    login(client, annotators[0])
    assert client.get("/")["Location"] == LABEL_URL
    login(client, staff)
    assert client.get("/")["Location"] == "/staff/"
    # A second test set turns the annotator's home into a list.
    write_faces(tmp_path / "more", fer_faces[300:302], subfolders=False)
    import_testset(tmp_path / "more", name="more")
    login(client, annotators[0])
    page = client.get("/").content.decode()
    assert "/label/more/" in page and "/label/study/" in page and "0 / 8" in page
