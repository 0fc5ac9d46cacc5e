"""Twenty annotators of a pooled test set labelling at once, over real HTTP: every image
ends with exactly its votes per image, none short and none over, and each annotator is
told at the end that no image needs them (on PostgreSQL too: ``make test`` runs this
folder again there)."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.urls import resolve

from annotator.image_import import import_testset
from annotator.models import Image, Lease, Vote
from annotator.testsets import check_overlap
from scripts.http_client import TIMEOUT, HttpClient
from tests.annotator.helpers import write_faces

pytestmark = pytest.mark.django_db(transaction=True)

N_CLIENTS = 20
N_IMAGES = 24
VOTES_PER_IMAGE = 3
TESTSET = "pool"


def label_until_told_to_stop(client: HttpClient, start: threading.Barrier) -> list[int]:
    import json

    client.log_in()
    start.wait(timeout=TIMEOUT)
    base = f"/label/{TESTSET}/"
    status, _, body = client.send("GET", base)
    state, voted = json.loads(body), []
    while state["current"] is not None:
        image = state["current"]["id"]
        status, _, body = client.send("POST", base + "vote/", {"image": image, "label": "neutral"})
        assert status == 200, body[:200]
        state = json.loads(body)
        voted.append(image)
    status, _, page = client.send("GET", base, as_json=False)
    assert "No more images need you" in page, (client.username, voted)
    return voted


def test_twenty_annotators_at_once_give_every_image_exactly_its_votes(live_server, tmp_path, fer_faces):
    resolve("/")
    write_faces(tmp_path / "pool", fer_faces[:N_IMAGES], subfolders=False)
    testset = import_testset(tmp_path / "pool", name=TESTSET, overlap=check_overlap(VOTES_PER_IMAGE)).testset
    users = get_user_model()
    clients = []
    for n in range(N_CLIENTS):
        users.objects.create_user(f"p{n:02d}", password=f"pw-p{n:02d}-x9")
        clients.append(HttpClient(live_server.url, f"p{n:02d}", f"pw-p{n:02d}-x9"))
    start = threading.Barrier(N_CLIENTS)
    with ThreadPoolExecutor(N_CLIENTS) as pool:
        voted = [f.result() for f in [pool.submit(label_until_told_to_stop, c, start) for c in clients]]
    per_image = Counter(Vote.objects.filter(testset=testset).values_list("image_id", flat=True))
    assert sorted(per_image.values()) == [VOTES_PER_IMAGE] * N_IMAGES  # none short, none over
    assert sum(len(v) for v in voted) == N_IMAGES * VOTES_PER_IMAGE
    assert all(len(set(v)) == len(v) for v in voted)  # nobody was served an image twice
    assert sum(1 for v in voted if v) > VOTES_PER_IMAGE  # the work really was shared
    assert set(Image.objects.filter(testset=testset).values_list("n_votes", "complete")) == {(VOTES_PER_IMAGE, True)}
    assert not Lease.objects.filter(skipped=False).exists()  # every lease ended with its vote
