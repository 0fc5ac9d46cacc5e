"""Many annotators voting at once, over real HTTP against a live server.

Twelve clients, each with its own cookie jar, log in through the login form (CSRF on)
and vote on the same ten images at the same time, with double submissions (the same
post sent twice at once), changed votes and undos in the mix. Each client keeps the
state it expects the server to hold; afterwards the database must hold exactly that:
one vote per (image, annotator), none lost, none duplicated, and a history of events
that replays to the stored votes.
"""
from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.urls import resolve

from annotator.image_import import import_testset
from annotator.models import Vote, VoteEvent
from scripts.http_client import TIMEOUT, HttpClient
from tests.annotator.helpers import write_faces

pytestmark = pytest.mark.django_db(transaction=True)

N_CLIENTS = 12
N_IMAGES = 6
TESTSET = "crowd"
LABELS = ["negative", "neutral", "positive"]


class Expected:
    """What one client has sent, and so what the server must hold for it."""

    def __init__(self):
        self.votes: dict[int, str] = {}
        self.written: list[int] = []  # images by the time of their last write, oldest first
        self.actions = Counter()

    def vote(self, image: int, label: str) -> str:
        before = self.votes.get(image)
        if before == label:
            return "unchanged"
        self.votes[image] = label
        if image in self.written:
            self.written.remove(image)
        self.written.append(image)
        action = "cast" if before is None else "change"
        self.actions[action] += 1
        return action

    def undo(self) -> int | None:
        if not self.written:
            return None
        image = self.written.pop()
        del self.votes[image]
        self.actions["undo"] += 1
        return image


def plan(seed: int, images: list[int]) -> list[tuple]:
    """A client's steps: votes on every image in its own order, with doubles, changes and undos."""
    rng = random.Random(seed)
    order = rng.sample(images, len(images))
    steps = [("undo",)]  # nothing to undo yet: must be harmless
    for n, image in enumerate(order):
        label = rng.choice(LABELS)
        steps.append(("double" if n % 3 == 0 else "vote", image, label))
        if n % 4 == 1:
            steps.append(("vote", image, rng.choice([x for x in LABELS if x != label])))  # a change
        if n % 5 == 2:
            steps.append(("undo",))
        if n % 7 == 3:
            steps.append(("vote", order[0], rng.choice(LABELS)))  # back to an earlier image
    steps.append(("undo",))
    return steps


def run_client(client: HttpClient, steps, expected: Expected, start: threading.Barrier, json_api: bool):
    """Carry out ``steps`` and check each answer against ``expected``; return problems found."""
    problems = []
    landed = client.log_in()
    # The only test set: home sends an annotator straight to its labelling page.
    assert landed.endswith(f"/label/{TESTSET}/"), (client.username, landed)
    start.wait(timeout=TIMEOUT)
    base = f"/label/{TESTSET}/"
    for step in steps:
        if step[0] == "undo":
            want = expected.undo()
            status, url, body = client.send("POST", base + "undo/", as_json=json_api)
            if json_api:
                undone = json.loads(body)["undone"] if status == 200 else "error"
                got = undone and undone["image"]
            else:
                match = re.search(r"\?image=(\d+)$", url)
                got = int(match.group(1)) if match else None
            if status != 200 or got != want:
                problems.append(f"{client.username} undo: wanted {want}, got {got} ({status})")
            continue
        kind, image, label = step
        action = expected.vote(image, label)
        data = {"image": image, "label": label, "time_spent_ms": 800}
        copies = 2 if kind == "double" else 1
        with ThreadPoolExecutor(copies) as pool:  # a double click: the same post twice at once
            posts = [pool.submit(client.send, "POST", base + "vote/", data, as_json=json_api)
                     for _ in range(copies)]
            answers = [post.result() for post in posts]
        for status, url, body in answers:
            if status != 200:
                problems.append(f"{client.username} vote {image} {label}: status {status}: {body[:200]}")
            elif json_api:
                state = json.loads(body)
                if state["vote"] != {"image": image, "label": label, "action": state["vote"]["action"]}:
                    problems.append(f"{client.username} vote {image}: answer {state['vote']}")
            elif not url.endswith(f"?after={image}"):
                problems.append(f"{client.username} vote {image}: redirected to {url}")
        if json_api:
            actions = sorted(json.loads(body)["vote"]["action"] for s, _, body in answers if s == 200)
            wanted = sorted([action] + ["unchanged"] * (copies - 1))
            if actions != wanted:
                problems.append(f"{client.username} vote {image} {label}: actions {actions}, wanted {wanted}")
            progress = [json.loads(body)["progress"]["done"] for _, _, body in answers]
            if set(progress) != {len(expected.votes)}:  # own progress only, whatever the others do
                problems.append(f"{client.username}: progress {progress}, wanted {len(expected.votes)}")
    return problems


def replay(events) -> dict:
    """The votes the event history describes; raises if the history contradicts itself."""
    state = {}
    for image, annotator, action, label, previous in events:
        pair = (image, annotator)
        if action == "cast":
            assert pair not in state, f"a second cast for {pair}"
            state[pair] = label
        elif action == "change":
            assert state.get(pair) == previous, f"change of {pair} from {previous}, stored {state.get(pair)}"
            state[pair] = label
        elif action == "undo":
            assert state.pop(pair, None) == previous, f"undo of {pair} that was not stored as {previous}"
        else:
            raise AssertionError(f"unexpected event {action} for {pair}")
    return state


@pytest.fixture
def crowd(live_server, tmp_path, fer_faces):
    # Load the URLconf (and the libraries its views import) before the clock starts, so the
    # clients' first requests measure the app rather than import time.
    resolve("/")
    write_faces(tmp_path / "crowd", fer_faces[200:200 + N_IMAGES], subfolders=False)
    testset = import_testset(tmp_path / "crowd", name=TESTSET).testset
    users = get_user_model()
    people = [users.objects.create_user(f"c{n:02d}", password=f"pw-c{n:02d}-x9") for n in range(N_CLIENTS)]
    return testset, people


def test_twelve_annotators_voting_at_once_lose_and_duplicate_nothing(live_server, crowd):
    testset, people = crowd
    images = sorted(testset.images.values_list("id", flat=True))
    clients = [HttpClient(live_server.url, user.username, f"pw-{user.username}-x9") for user in people]
    expected = {c.username: Expected() for c in clients}
    steps = {c.username: plan(seed, images) for seed, c in enumerate(clients)}
    start = threading.Barrier(N_CLIENTS)
    with ThreadPoolExecutor(N_CLIENTS) as pool:
        futures = [
            pool.submit(run_client, c, steps[c.username], expected[c.username], start, json_api=n % 4 != 0)
            for n, c in enumerate(clients)
        ]
        problems = [p for future in futures for p in future.result()]
    assert problems == []

    stored = list(Vote.objects.filter(image__testset=testset)
                  .values_list("image_id", "annotator__username", "label"))
    # Exactly one vote per (image, annotator): the constraint holds and nothing slipped past it.
    assert len(stored) == len({(image, who) for image, who, _ in stored})
    for who, want in expected.items():
        assert {image: label for image, name, label in stored if name == who} == want.votes, who
    assert len(stored) == sum(len(e.votes) for e in expected.values())
    per_image = Counter(image for image, _, _ in stored)
    assert per_image == Counter(image for e in expected.values() for image in e.votes)
    assert max(per_image.values()) > 1  # clients really did share images

    events = list(VoteEvent.objects.filter(image__testset=testset).order_by("id").values_list(
        "image_id", "annotator__username", "action", "label", "previous_label"))
    assert replay(events) == {(image, who): label for image, who, label in stored}
    for who, want in expected.items():
        counted = Counter(action for _, name, action, _, _ in events if name == who)
        assert counted == want.actions, who  # a double submission is one cast, never two
