"""A crowd study of real faces run end to end over HTTP, with its results checked.

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.crowd_study [--faces 2000] [--annotators 12]
        [--seed 0] [--workdir var/crowd-study] [--port 8765] [--models dense121_100]

1. The study: the first ``--faces`` FER2013 PublicTest faces whose FER+ votes have a
   majority among the 8 emotions (one emotion holds more than half of the emotion votes;
   a face whose content repeats an earlier one is left out, as the importer would), saved
   as 48 x 48 PNGs (``row-28710.png``); 5 % of them become control images whose known answer
   is their FER+ majority emotion. A fresh SQLite database and media folder in the work
   folder hold everything, so the user's own database is never touched: ``migrate``,
   ``import_testset`` (affect8 with unsure and not-a-face, 3 to 7 votes per image stopped
   when unanimous, a control in 20 images), ``import_controls``, and the annotator accounts.
2. ``runserver`` on 127.0.0.1:PORT, stopped at the end whatever happens.
3. The annotators label at once, one thread and one cookie jar each, as the labelling
   page's JavaScript does: log in through the form, then GET the state and POST a vote
   until no image needs them. An annotator looks at the image (fetches it and recognises
   its content) and answers with one of that face's real FER+ votes at random, with a
   believable time per vote that is sent, not waited. The last annotator is careless:
   fast, and "neutral" nine times in ten. People come back later: while a round of
   labelling still cast votes, everyone labels again (an image can need more votes after
   an annotator was told nothing was left, when others' votes on it disagreed).
4. Checks: every regular face stopped exactly at its target (complete, 3 to 7 votes, no
   vote after it was complete); the votes the adaptive stop saved; votes per annotator;
   nobody served an image twice; control images got votes, are not told apart by the page
   and are left out of the statistics; ``annotator_quality`` flags the careless annotator;
   ``benchmark --holdout all`` in affect8 and bin3 (JSON reports in the work folder).
   Any failed check ends the run with status 1 and says which.

Without ../shared/data there is nothing to build the study from: the run stops with a
message. ``tests/reliability/test_crowd_study_script.py`` runs the same functions on a
tiny study made from the committed sample.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import http.cookiejar
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image as PILImage

from ferml.data import FERPLUS_COLUMNS, vote_labels
from ferml.ferplus import read_ferplus
from ferml.labels import AFFECT8

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FER2013 = SHARED_DATA / "fer2013" / "fer2013.csv.gz"
FERPLUS = SHARED_DATA / "ferplus" / "fer2013new.csv"
KEY = "row-{row:05d}.png"
TESTSET = "crowd"

# The study's design: what ``import_testset`` is given.
LABEL_SCHEME = "affect8"
EXTRA_ANSWERS = ("unsure", "not-a-face")
ANSWERS = (*AFFECT8, *EXTRA_ANSWERS)
VOTES_PER_IMAGE = 3
MAX_VOTES = 7
STOP_RULE = "unanimous"
CONTROL_RATE = 20
CONTROL_SHARE = 0.05

# Each FER+ column as the answer an annotator of this study would give for it.
FERPLUS_ANSWERS = {
    "neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
    "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt",
    "unknown": "unsure", "NF": "not-a-face",
}

# How long a vote takes: a careful look, or a glance.
GOOD_MS = (1500, 4000)
CARELESS_MS = 300
CARELESS_FAVOURITE, CARELESS_SHARE = "neutral", 0.9

# Rounds of labelling at most: each one after the first only serves images whose
# disagreeing votes asked for more after everyone had been told nothing was left.
MAX_ROUNDS = 5
HTTP_TIMEOUT = 60
# What a labelling state's image may say: anything more could tell a control image apart.
SERVED_FIELDS = {"id", "src", "shown"}
ALL_DONE_TEXT = "No more images need you"


class StudyError(RuntimeError):
    """A step that could not be done; the message says which and why."""


# --------------------------------------------------------------------------- the study


@dataclass(frozen=True)
class Face:
    key: str
    votes: tuple[str, ...]  # the FER+ taggers' answers (10), in this study's answer names
    majority: str  # the FER+ majority emotion, in affect8
    png: bytes


@dataclass
class Study:
    images_dir: Path
    controls_csv: Path
    faces: dict[str, Face]  # by key, controls included
    controls: dict[str, str]  # key -> known answer
    key_by_digest: dict[str, str] = field(default_factory=dict)  # sha256 of the PNG -> key

    def __post_init__(self):
        self.key_by_digest = {sha256(face.png): key for key, face in self.faces.items()}

    @property
    def regular_keys(self) -> list[str]:
        return [key for key in self.faces if key not in self.controls]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_bytes(pixels: np.ndarray) -> bytes:
    out = BytesIO()
    PILImage.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def read_faces(fer_csv: Path, ferplus_csv: Path, n_faces: int) -> list[Face]:
    """The first ``n_faces`` PublicTest faces with a FER+ majority emotion, each content once."""
    fer = pd.read_csv(fer_csv, usecols=["pixels", "Usage", "row"])
    fer = fer[fer["Usage"] == "PublicTest"].sort_values("row")
    ferplus = read_ferplus(ferplus_csv).set_index("row")
    counts = ferplus.loc[fer["row"], FERPLUS_COLUMNS].to_numpy(dtype=np.int64)
    # the project's own definition of a FER+ majority (the one training relabels with)
    majorities, _, _ = vote_labels(counts, "affect8", "majority")
    faces, seen = [], set()
    for row, pixels, majority in zip(fer["row"], fer["pixels"], majorities):
        if majority is None:
            continue
        png = png_bytes(np.array(pixels.split(), dtype=np.uint8).reshape(48, 48))
        if sha256(png) in seen:  # FER2013 repeats some faces; a test set keeps one per content
            continue
        seen.add(sha256(png))
        tagged = ferplus.loc[row, list(FERPLUS_ANSWERS)]
        votes = tuple(answer for column, answer in FERPLUS_ANSWERS.items()
                      for _ in range(int(tagged[column])))
        faces.append(Face(KEY.format(row=int(row)), votes, majority, png))
        if len(faces) == n_faces:
            return faces
    raise StudyError(f"{fer_csv} has only {len(faces)} PublicTest faces with a FER+ majority; "
                     f"{n_faces} were asked for.")


def build_study(fer_csv: Path, ferplus_csv: Path, n_faces: int, workdir: Path, seed: int,
                control_share: float = CONTROL_SHARE) -> Study:
    """Write the faces (``workdir/faces``) and the control csv (``workdir/controls.csv``)."""
    faces = read_faces(fer_csv, ferplus_csv, n_faces)
    n_controls = max(1, round(control_share * len(faces)))
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(faces), size=n_controls, replace=False))
    controls = {faces[i].key: faces[i].majority for i in chosen}

    images_dir = workdir / "faces"
    shutil.rmtree(images_dir, ignore_errors=True)
    images_dir.mkdir(parents=True)
    for face in faces:
        (images_dir / face.key).write_bytes(face.png)
    controls_csv = workdir / "controls.csv"
    with controls_csv.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["image", "label"])
        writer.writerows(sorted(controls.items()))
    return Study(images_dir, controls_csv, {face.key: face for face in faces}, controls)


# --------------------------------------------------------------------------- annotators


@dataclass(frozen=True)
class Annotator:
    username: str
    password: str
    careless: bool = False

    def answer(self, face: Face, rng: random.Random) -> tuple[str, int]:
        """(answer, time spent in ms) for a face: one of its real votes after a careful look,
        or, careless, mostly the same answer at a glance."""
        if self.careless:
            label = CARELESS_FAVOURITE if rng.random() < CARELESS_SHARE else rng.choice(ANSWERS)
            return label, max(100, round(rng.gauss(CARELESS_MS, 60)))
        return rng.choice(face.votes), rng.randint(*GOOD_MS)


def make_annotators(n: int) -> list[Annotator]:
    """w01..wNN with fresh passwords; the last one is careless."""
    if n < 2:
        raise StudyError("A crowd needs at least 2 annotators (the last one is the careless one).")
    return [Annotator(f"w{i:02d}", f"crowd-{secrets.token_urlsafe(12)}", careless=i == n)
            for i in range(1, n + 1)]


class Browser:
    """One person's browser: a cookie jar, the login form, CSRF as the labelling page sends it."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def send(self, method: str, path: str, fields: dict | None = None, *, as_json: bool = True) -> bytes:
        body = urllib.parse.urlencode(fields or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.base_url + path, data=body, method=method)
        if as_json:
            request.add_header("Accept", "application/json")
        if method == "POST":
            request.add_header("X-CSRFToken", self._cookie("csrftoken"))
        try:
            with self.opener.open(request, timeout=HTTP_TIMEOUT) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise StudyError(f"{method} {path} answered {error.code}: {error.read()[:300]!r}") from None

    def state(self, method: str, path: str, fields: dict | None = None) -> dict:
        return json.loads(self.send(method, path, fields))

    def log_in(self, username: str, password: str) -> None:
        page = self.send("GET", "/accounts/login/", as_json=False).decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.send("POST", "/accounts/login/", {"username": username, "password": password,
                                                "csrfmiddlewaretoken": token}, as_json=False)
        if not self._cookie("sessionid"):
            raise StudyError(f"{username} could not log in at {self.base_url}/accounts/login/.")

    def _cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")


@dataclass
class AnnotatorLog:
    """What one annotator was served and answered, in order."""

    annotator: Annotator
    served: list[tuple[int, str]] = field(default_factory=list)  # (image id, key)
    answers: list[tuple[str, int]] = field(default_factory=list)  # (answer, time spent ms)
    page_hints: list[str] = field(default_factory=list)  # anything that told a control apart
    done_page_seen: bool = False


def label_until_done(browser: Browser, log: AnnotatorLog, testset: str, study: Study,
                     rng: random.Random) -> int:
    """Label as the page's JavaScript does until no image needs this annotator; the votes cast."""
    base = f"/label/{testset}/"
    state = browser.state("GET", base)
    cast = 0
    while state["current"] is not None:
        current = state["current"]
        if set(current) != SERVED_FIELDS:
            log.page_hints.append(f"image {current['id']} came with {sorted(current)}")
        # the person looks at the image: its content says which face it is
        key = study.key_by_digest.get(sha256(browser.send("GET", current["src"], as_json=False)))
        if key is None:
            raise StudyError(f"{log.annotator.username} was served {current['src']}, "
                             "which is no face of the study.")
        label, spent_ms = log.annotator.answer(study.faces[key], rng)
        log.served.append((current["id"], key))
        log.answers.append((label, spent_ms))
        state = browser.state("POST", base + "vote/",
                              {"image": current["id"], "label": label, "time_spent_ms": spent_ms})
        if state.get("vote", {}).get("label") != label:
            raise StudyError(f"{log.annotator.username}'s vote {label!r} on {key} was not stored: {state}")
        if "feedback" in state:
            log.page_hints.append(f"the vote on {key} got feedback {state['feedback']!r}")
        cast += 1
    return cast


@dataclass
class CrowdRun:
    logs: list[AnnotatorLog]
    votes_per_round: list[int]


def run_crowd(base_url: str, testset: str, annotators: Sequence[Annotator], study: Study,
              seed: int, max_rounds: int = MAX_ROUNDS) -> CrowdRun:
    """Every annotator labels at once, in rounds, until a round casts no vote."""
    browsers = [Browser(base_url) for _ in annotators]
    logs = [AnnotatorLog(a) for a in annotators]
    rngs = [random.Random(f"{seed}-{a.username}") for a in annotators]
    rounds: list[int] = []
    with ThreadPoolExecutor(len(annotators)) as pool:
        list(pool.map(lambda b, a: b.log_in(a.username, a.password), browsers, annotators))
        while len(rounds) < max_rounds:
            cast = list(pool.map(lambda b, log, rng: label_until_done(b, log, testset, study, rng),
                                 browsers, logs, rngs))
            rounds.append(sum(cast))
            if rounds[-1] == 0:
                break
        else:
            raise StudyError(f"Annotators were still voting after {max_rounds} rounds: {rounds}.")
        # what a person sees at the end: the page itself says nothing is left
        pages = pool.map(lambda b: b.send("GET", f"/label/{testset}/", as_json=False).decode(), browsers)
        for log, page in zip(logs, pages):
            log.done_page_seen = ALL_DONE_TEXT in page
    return CrowdRun(logs, rounds)


# --------------------------------------------------------------------------- checks


class Checks:
    """Prints each check as it is made and keeps the failed ones."""

    def __init__(self):
        self.failures: list[str] = []

    def expect(self, passed: bool, what: str, why_not: str = "") -> bool:
        detail = f": {why_not}" if why_not and not passed else ""
        print(f"  [{'ok' if passed else 'FAILED'}] {what}{detail}")
        if not passed:
            self.failures.append(what + (f": {why_not}" if why_not else ""))
        return passed


def _listed(items: Sequence, limit: int = 5) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_pool(testset_name: str, n_annotators: int, checks: Checks) -> dict:
    """Every regular image stopped exactly at its target; returns the pool's figures.

    The target is where the stop rule says complete, or, with fewer annotators than the
    maximum of votes, a vote from every annotator: nobody is left to give the next one.
    """
    # Django is set up by the caller (the study's database, or the test database).
    from annotator.dashboard import pool_progress
    from annotator.models import Image, TestSet, Vote

    testset = TestSet.objects.get(name=testset_name)
    rule = testset.overlap
    position = {answer: i for i, answer in enumerate(testset.answers)}
    in_order = defaultdict(list)  # image id -> its answers in the order they were cast
    voters = defaultdict(set)
    for image_id, annotator_id, label in (Vote.objects.filter(testset=testset).order_by("id")
                                          .values_list("image_id", "annotator_id", "label")):
        in_order[image_id].append(position[label])
        voters[image_id].add(annotator_id)
    short, over, exhausted, stored_wrong = [], [], [], []
    for pk, key, complete in Image.objects.filter(testset=testset, control_label="").values_list(
            "pk", "key", "complete"):
        counts = [0] * len(position)
        done_at = None  # the number of votes at which the rule said "complete"
        for n, answer in enumerate(in_order[pk], start=1):
            counts[answer] += 1
            if done_at is None and rule.complete(counts):
                done_at = n
        n_votes = len(in_order[pk])
        if done_at is None and n_votes >= rule.minimum and len(voters[pk]) == n_annotators < rule.maximum:
            exhausted.append(key)
        elif done_at is None:
            short.append(f"{key} ({n_votes} votes)")
        elif n_votes > done_at or n_votes > rule.maximum:
            over.append(f"{key} ({n_votes} votes, complete at {done_at})")
        if complete != (done_at is not None):
            stored_wrong.append(f"{key} (stored complete={complete})")
    pool = pool_progress(testset)
    per_image = Counter(len(in_order[pk]) for pk in Image.objects.filter(
        testset=testset, control_label="").values_list("pk", flat=True))
    print(f"  regular images: {pool.n_images}, complete {pool.complete}, in progress {pool.in_progress}, "
          f"untouched {pool.untouched}; {pool.votes} votes")
    print("  votes per image: " + ", ".join(f"{n}: {per_image[n]}" for n in sorted(per_image)))
    checks.expect(not short, f"every regular image has its votes (complete, at least {rule.minimum})",
                  f"{len(short)} short: {_listed(short)}")
    checks.expect(not over, f"no image got a vote after it was complete (none over {rule.maximum})",
                  f"{len(over)} over: {_listed(over)}")
    checks.expect(not stored_wrong, "each image's stored state agrees with its votes", _listed(stored_wrong))
    checks.expect(pool.complete + len(exhausted) == pool.n_images,
                  "the pool counts every image complete" + (" or voted by everyone" if exhausted else ""),
                  f"{pool.complete} of {pool.n_images} complete, {len(exhausted)} voted by everyone")
    if exhausted:
        print(f"  note: {len(exhausted)} images got a vote from each of the {n_annotators} annotators "
              f"and still disagree: the maximum of {rule.maximum} votes needs more annotators. "
              f"The pool counts them in progress, {pool.votes_needed} votes still needed.")
    if rule.adaptive:
        most = rule.maximum * pool.n_images
        print(f"  the adaptive stop ({rule.stop}) saved {pool.votes_saved} votes of {most} at most "
              f"({pool.votes_saved / max(1, most):.0%})")
    return {"n_images": pool.n_images, "votes": pool.votes, "votes_saved": pool.votes_saved,
            "exhausted": len(exhausted), "votes_per_image": dict(sorted(per_image.items()))}


def check_annotators(testset_name: str, crowd: CrowdRun, checks: Checks) -> dict[str, int]:
    """Votes per annotator, nobody served an image twice, everybody saw the end page."""
    from django.db.models import Count

    from annotator.models import Image, TestSet, Vote

    testset = TestSet.objects.get(name=testset_name)
    controls = Image.objects.filter(testset=testset).exclude(control_label="").values("pk")
    votes = Vote.objects.filter(testset=testset)
    per_annotator = dict(votes.values_list("annotator__username").annotate(n=Count("id")))
    on_controls = dict(votes.filter(image_id__in=controls).values_list("annotator__username")
                       .annotate(n=Count("id")))
    names = [log.annotator.username for log in crowd.logs]
    print("  votes per annotator (of them on control images): " + ", ".join(
        f"{name}{'*' if log.annotator.careless else ''} {per_annotator.get(name, 0)} "
        f"({on_controls.get(name, 0)})"
        for name, log in zip(names, crowd.logs)) + "   (* careless)")
    print("  votes per round of labelling: " + ", ".join(map(str, crowd.votes_per_round)))
    twice = [f"{log.annotator.username}: {key}" for log in crowd.logs
             for key, n in Counter(key for _, key in log.served).items() if n > 1]
    checks.expect(not twice, "no annotator was served an image twice", _listed(twice))
    cast = {(name, key, label, spent_ms) for name, log in zip(names, crowd.logs)
            for (_, key), (label, spent_ms) in zip(log.served, log.answers)}
    kept = set(votes.values_list("annotator__username", "image__key", "label", "time_spent_ms"))
    checks.expect(cast == kept, "every vote is stored as it was cast (answer and time), and no other",
                  f"{len(cast - kept)} cast but not stored, {len(kept - cast)} stored but not cast")
    no_control = [name for name, log in zip(names, crowd.logs)
                  if len(log.served) >= testset.control_rate > 0 and not on_controls.get(name)]
    checks.expect(not no_control,
                  f"every annotator with {testset.control_rate}+ votes was served a control image",
                  _listed(no_control))
    hints = [f"{log.annotator.username}: {hint}" for log in crowd.logs for hint in log.page_hints]
    checks.expect(not hints, "the page never told a control image apart", _listed(hints))
    not_told = [log.annotator.username for log in crowd.logs if not log.done_page_seen]
    checks.expect(not not_told, f"every annotator ends on {ALL_DONE_TEXT!r}", _listed(not_told))
    return per_annotator


def check_controls(testset_name: str, study: Study, checks: Checks) -> None:
    """Control images got votes, and no statistic counts them."""
    from django.db.models import Count

    from annotator.dashboard import pool_progress
    from annotator.models import Image, TestSet, Vote
    from evaluation.services import testset_votes

    testset = TestSet.objects.get(name=testset_name)
    stored = dict(Image.objects.filter(testset=testset).exclude(control_label="")
                  .values_list("key", "control_label"))
    checks.expect(stored == study.controls,
                  f"the {len(study.controls)} control images are stored with their answers",
                  f"{len(stored)} stored")
    votes = Vote.objects.filter(testset=testset, image__key__in=list(stored))
    per_control = dict(votes.values_list("image__key").annotate(n=Count("id")))
    right = sum(1 for key, label in votes.values_list("image__key", "label") if label == stored[key])
    n_votes = sum(per_control.values())
    unvoted = sorted(set(stored) - set(per_control))
    print(f"  control images: {len(stored)}, {n_votes} votes, {right} of them the known answer "
          f"({right / max(1, n_votes):.0%}); votes per control image: "
          + ", ".join(f"{n}: {c}" for n, c in sorted(Counter(per_control.values()).items())))
    checks.expect(not unvoted, "every control image got votes",
                  f"{len(unvoted)} got none: {_listed(unvoted)}")
    counted = set(testset_votes(testset)["image"])
    checks.expect(not counted & set(stored), "no statistic counts a vote on a control image",
                  _listed(sorted(counted & set(stored))))
    pool = pool_progress(testset)
    regular_votes = Vote.objects.filter(testset=testset).exclude(image__key__in=list(stored)).count()
    checks.expect(pool.n_images == len(study.faces) - len(stored) and pool.votes == regular_votes,
                  "the pool's progress leaves the control images out",
                  f"{pool.n_images} images and {pool.votes} votes counted")


def read_quality_flags(table_csv: Path) -> dict[str, list[str]]:
    """Each annotator's flags from the csv ``annotator_quality --csv`` writes (the reasons are
    its last column, after a column with their number)."""
    with table_csv.open(newline="", encoding="utf-8") as table:
        rows = list(csv.reader(table))[1:]
    return {row[0]: [flag for flag in row[-1].split("; ") if flag] for row in rows}


def check_careless_flagged(flags: dict[str, list[str]], annotators: Sequence[Annotator],
                           checks: Checks) -> None:
    """Print each annotator's flags; the careless one must have some."""
    for annotator in annotators:
        reasons = flags.get(annotator.username, [])
        mark = "careless" if annotator.careless else "careful"
        print(f"  {annotator.username} ({mark}): " + ("; ".join(reasons) if reasons else "no flag"))
    careless = [a.username for a in annotators if a.careless]
    checks.expect(all(flags.get(name) for name in careless),
                  f"the careless annotator ({', '.join(careless)}) is flagged")
    wrongly = [a.username for a in annotators if not a.careless and flags.get(a.username)]
    if wrongly:  # a false alarm is worth seeing, but a careful annotator may have an odd run
        print(f"  note: careful annotator(s) flagged too: {', '.join(wrongly)}")


def benchmark_headline(result: dict, checks: Checks, n_regular: int) -> list[str]:
    """The panel's mean human accuracy and each model's, with the difference and its interval."""
    panel = result.get("panel")
    if not checks.expect(bool(panel and panel.get("models")),
                         f"the {result.get('label_set')} report has a panel"):
        return []
    checks.expect(panel["n_images"] <= n_regular, "the benchmark scores regular images only",
                  f"{panel['n_images']} images scored, {n_regular} regular")

    def percent(x):
        return "n/a" if x is None else f"{100 * x:.1f} %"

    def points(x):
        return "n/a" if x is None else f"{100 * x:+.1f}"

    lines = [f"{result['label_set']}: humans (mean of {panel['n_annotators_included']}) "
             f"{percent(panel['human_mean_accuracy'])} over {panel['n_images']} images"]
    for model in panel["models"]:
        low, high = model["ci95"] if model.get("ci95") else (None, None)
        p = model.get("p_value")
        lines.append(f"{result['label_set']}: {model['name']} {percent(model['mean_accuracy'])}, "
                     f"model - human {points(model['difference'])} points, "
                     f"95 % CI [{points(low)}, {points(high)}]"
                     + ("" if p is None else f", p = {p:.2g}"))
    return lines


# --------------------------------------------------------------------------- the run


class StepTimer:
    def __init__(self):
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"\n== {name}", flush=True)
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - start))
            print(f"   ({name}: {self.steps[-1][1]:.1f} s)", flush=True)

    def summary(self) -> str:
        width = max((len(name) for name, _ in self.steps), default=0)
        lines = [f"  {name.ljust(width)}  {seconds:7.1f} s" for name, seconds in self.steps]
        lines.append(f"  {'total'.ljust(width)}  {sum(s for _, s in self.steps):7.1f} s")
        return "\n".join(lines)


def study_environment(workdir: Path) -> dict[str, str]:
    """The settings every process of the study runs with: its own database and media."""
    return {
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        # the local settings whatever the shell says: the study is a local one
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def manage(*args: str) -> str:
    """Run ``manage.py`` in the study's environment (already in ``os.environ``); its output."""
    done = subprocess.run([sys.executable, "manage.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise StudyError(f"manage.py {' '.join(map(str, args))} failed (exit {done.returncode}):\n"
                         + (done.stderr or done.stdout)[-2000:])
    return done.stdout


def create_accounts(annotators: Sequence[Annotator]) -> None:
    accounts = [(a.username, a.password) for a in annotators]
    manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                          f"[get_user_model().objects.create_user(n, password=p) for n, p in {accounts!r}]")


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(port: int, log: Path, wait_s: float = 90) -> Server:
    """``runserver`` on 127.0.0.1:port, once it answers."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise StudyError(f"Something already listens on 127.0.0.1:{port}; "
                             "choose another port with --port.")
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StudyError(f"The server stopped (exit {process.returncode}):\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url + "/accounts/login/", timeout=5):
                return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise StudyError(f"The server did not answer within {wait_s:.0f} s; see {log}.")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=2000,
                        help="faces in the study, controls included (default 2000)")
    parser.add_argument("--annotators", type=int, default=12,
                        help="annotators, the last one careless (default 12)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the controls and the answers (default 0)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "crowd-study",
                        help="folder of the study: its faces, database and media are made afresh, "
                             "the reports written there (default var/crowd-study)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port of the server on 127.0.0.1 (default 8765)")
    parser.add_argument("--models", default="dense121_100", help="comma-separated models to benchmark")
    args = parser.parse_args(argv)
    if args.faces < 20:
        parser.error("--faces must be 20 or more (5 %% of them are control images)")
    return args


def run_study(args: argparse.Namespace, timer: StepTimer, checks: Checks) -> list[str]:
    """Every step of the study in turn; the summary lines. The server stops whatever happens."""
    workdir = args.workdir.resolve()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    with timer.step(f"build the study ({args.faces} faces)"):
        if not (FER2013.exists() and FERPLUS.exists()):
            raise StudyError(f"The study is built from {FER2013} and {FERPLUS}; they are not there.")
        workdir.mkdir(parents=True, exist_ok=True)
        study = build_study(FER2013, FERPLUS, args.faces, workdir, args.seed)
        print(f"  {len(study.faces)} faces in {study.images_dir}, {len(study.controls)} of them control "
              f"images ({study.controls_csv})")
    # every subprocess and this process's own Django use the study's database only
    os.environ.update(study_environment(workdir))
    with timer.step("create the database (migrate)"):
        (workdir / "db.sqlite3").unlink(missing_ok=True)
        shutil.rmtree(workdir / "media", ignore_errors=True)
        manage("migrate", "--noinput", "-v", "0")
    with timer.step("import the faces (import_testset)"):
        print("  " + manage("import_testset", study.images_dir, "--name", TESTSET, "--labels", LABEL_SCHEME,
                            "--extras", ",".join(EXTRA_ANSWERS), "--votes-per-image", VOTES_PER_IMAGE,
                            "--max-votes", MAX_VOTES, "--stop", STOP_RULE,
                            "--control-rate", CONTROL_RATE).strip())
    with timer.step("mark the control images (import_controls)"):
        print("  " + manage("import_controls", study.controls_csv, "--testset", TESTSET).strip())
    with timer.step(f"create {args.annotators} annotator accounts"):
        annotators = make_annotators(args.annotators)
        create_accounts(annotators)

    server = None
    try:
        with timer.step("start the server"):
            server = start_server(args.port, workdir / "server.log")
            print(f"  {server.url} (log: {server.log})")
        with timer.step(f"label: {args.annotators} annotators at once over HTTP"):
            crowd = run_crowd(server.url, TESTSET, annotators, study, args.seed)
            print(f"  {sum(crowd.votes_per_round)} votes in {len(crowd.votes_per_round)} round(s)")
    finally:
        if server is not None:
            server.stop()  # at once: the benchmark wants the CPU

    import django

    django.setup()  # after the study's environment is set: this process reads its database
    with timer.step("check the pool, the annotators and the control images"):
        pool = check_pool(TESTSET, len(annotators), checks)
        check_annotators(TESTSET, crowd, checks)
        check_controls(TESTSET, study, checks)
    with timer.step("annotator quality (annotator_quality)"):
        table = workdir / "quality.csv"
        print(manage("annotator_quality", "--testset", TESTSET, "--csv", table).rstrip())
        check_careless_flagged(read_quality_flags(table), annotators, checks)

    summary = [f"{len(study.faces)} faces ({len(study.controls)} control images), "
               f"{len(annotators)} annotators, {pool['votes']} votes on regular images, "
               f"{pool['votes_saved']} saved by the adaptive stop"]
    for labels in (LABEL_SCHEME, "bin3"):
        with timer.step(f"benchmark in {labels} ({', '.join(models)}, --holdout all)"):
            report = workdir / f"benchmark-{labels}.json"
            text = manage("benchmark", "--testset", TESTSET, "--labels", labels, "--holdout", "all",
                          "--json", report, *[arg for m in models for arg in ("--model", m)])
            (workdir / f"benchmark-{labels}.txt").write_text(text)
            headline = benchmark_headline(json.loads(report.read_text()), checks, pool["n_images"])
            print("\n".join("  " + line for line in headline))
            summary += headline
    summary.append(f"reports: {workdir}/benchmark-{{{LABEL_SCHEME},bin3}}.{{json,txt}}, "
                   f"{workdir}/quality.csv")
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    timer, checks, summary = StepTimer(), Checks(), []
    try:
        summary = run_study(args, timer, checks)
    except (StudyError, OSError) as error:  # OSError: a request or a file that failed
        why = f"{type(error).__name__}: {error}" if isinstance(error, OSError) else str(error)
        checks.failures.append(why)
    print("\n== summary")
    print("\n".join("  " + line for line in summary))
    print("  elapsed per step:\n" + timer.summary())
    if checks.failures:
        print(f"\nFAILED: {len(checks.failures)} check(s) or step(s):", file=sys.stderr)
        for failure in checks.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("\nAll checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
