"""What an outside test of a deployed server found, each kept fixed: a stored vote is
reported as stored even when the next image cannot be built, and plain-text errors are
plain text, a long value cut rather than echoed whole. (The login lock-out behind the proxy
is in test_login_throttling.py, camera redirects in tests/live/test_relay.py.)"""
from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import Client

from annotator.models import Vote, VoteEvent

from .conftest import ANNOTATOR, STAFF

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


def test_a_stored_vote_is_reported_as_stored_when_the_next_image_fails(study, monkeypatch):
    import annotator.voting

    client = Client()
    client.login(username=ANNOTATOR[0], password=ANNOTATOR[1])
    image = study.images.exclude(votes__annotator__username=ANNOTATOR[0]).order_by("pk").first()

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(annotator.voting, "labelling_state", database_gone)
    answer = client.post(f"/label/{study.name}/vote/", {"image": image.pk, "label": "neutral"}, **JSON)
    assert answer.status_code == 200
    body = answer.json()
    assert body["vote"] == {"image": image.pk, "label": "neutral", "action": "cast"}
    assert body["current"] is None and "reload the page" in body["next_error"]
    assert Vote.objects.get(image=image, annotator__username=ANNOTATOR[0]).label == "neutral"
    monkeypatch.undo()
    # the annotator's retry of the same vote is no change: it was stored once
    again = client.post(f"/label/{study.name}/vote/", {"image": image.pk, "label": "neutral"}, **JSON)
    assert again.json()["vote"]["action"] == "unchanged"
    assert VoteEvent.objects.filter(image=image, annotator__username=ANNOTATOR[0]).count() == 1


def test_the_stream_answers_plain_text_without_html_entities_and_cuts_a_long_value(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user(STAFF[0], is_staff=True))
    source = "cam's <video> & \"more\"" + "x" * 400
    answer = client.get("/live/stream.mjpg", {"source": source, "model": "bkvgg12", "spectrum": "bin3",
                                              "prediction_sense": "0.35", "tracking_sense": "60",
                                              "prediction_every": "3", "label_every": "9"})
    assert answer.status_code == 400 and answer["Content-Type"] == "text/plain; charset=utf-8"
    text = answer.content.decode()
    assert text.startswith("source: “cam's <video> & \"more\"xxx")
    assert "… (422 characters)” is not a stored video" in text
    assert "&#x27;" not in text and "&lt;" not in text and len(text) < 600


def test_a_megabyte_label_is_not_echoed_back(study):
    client = Client()
    client.login(username=ANNOTATOR[0], password=ANNOTATOR[1])
    image = study.images.order_by("pk").first()
    answer = client.post(f"/label/{study.name}/vote/", {"image": image.pk, "label": "9" * 1_000_000}, **JSON)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error.startswith("Unknown label '" + "9" * 60 + "… (1,000,000 characters)': choose negative")
    assert len(answer.content) < 300
