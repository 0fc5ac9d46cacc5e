"""The vote path under load: annotators voting on a running server, timed and checked.

Each annotator is a separate HTTP client with its own cookies (``scripts/http_client.py``)
that logs in through the login form and labels as ``label.js`` does: it posts a vote
(the answer holds the next image) and fetches the next image's file, which the browser
preloads. Per request it records the time until the whole answer arrived ("latency") and
the server's own time from the ``Server-Timing`` header ("app", without the time a request
waited for a thread). It prints p50 / p95 / max per kind, the votes per second, and checks
the database afterwards: every vote the server confirmed is stored with its label, nothing
else is, and each is one "cast" in the vote history (none lost, none doubled). Exit status
1 when that check fails or a request failed.

Bounded: it runs ``--seconds`` (after every annotator has logged in and seen a first
image), and every request gives up after 30 s. The annotators are accounts of its own
(``bench-01`` ...), created with a fresh password and deleted afterwards with their votes
(``--keep`` keeps them). Run it with the server's own settings in the environment, so it
reaches the same database (README "Production: serving a real study", "Under load"):

    set -a; . /etc/fer/env; set +a
    .venv/bin/python -m scripts.benchmark_votes --url http://127.0.0.1:8000 --testset ferplus \\
        --annotators 20 --pause 1 --seconds 60

``--pause 1``: each annotator starts a vote once a second (a fast human pace), each at a
moment of its own within the second (a seeded random start), as people working
independently do; ``--lockstep`` starts them all at the same moment every second instead,
bursts of one vote per annotator at once (the worst case). ``--pause 0``: each votes again
as soon as the last answer is in. Requests carry ``X-Forwarded-Proto:
https`` and an ``Origin`` as through the TLS proxy, so the production settings (HTTPS
redirect, secure cookies, CSRF origin check) need no change; ``--host`` names the host
when ALLOWED_HOSTS does not list the URL's (``--direct``: plain http, for a server not
behind the proxy, as in the test that runs this script for a few seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

LABELS = ["negative", "neutral", "positive"]
TIMEOUT = 30
PREFIX = "bench-"


@dataclass
class Annotator:
    """One annotator's client, what it sent and what it measured."""

    name: str
    password: str
    votes: dict[int, str] = field(default_factory=dict)  # image -> label the server confirmed
    actions: Counter = field(default_factory=Counter)
    times: dict[str, list[tuple[float, float | None]]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)


def client_for(url: str, host: str | None, name: str, password: str, direct: bool = False):
    import http.cookiejar

    from scripts.http_client import HttpClient

    class OverPlainHttp(http.cookiejar.DefaultCookiePolicy):
        """The production cookies are Secure; without the TLS proxy they go over http anyway."""

        def return_ok_secure(self, cookie, request):
            return True

    origin = f"{'http' if direct else 'https'}://{host or re.sub(r'^https?://', '', url).rstrip('/')}"

    class AsThroughTheProxy(HttpClient):
        def request(self, method, path, data=None, *, as_json=True):
            request = super().request(method, path, data, as_json=as_json)
            if not direct:
                request.add_header("X-Forwarded-Proto", "https")
            request.add_header("Origin", origin)
            request.add_header("Referer", origin + path)
            if host:
                request.add_header("Host", host)
            return request

    return AsThroughTheProxy(url.rstrip("/"), name, password, OverPlainHttp())


def timed(client, method: str, path: str, data=None) -> tuple[int, bytes, float, float | None]:
    """(status, body, seconds until the whole answer arrived, the app's own ms or None)."""
    started = time.perf_counter()
    with client.open(method, path, data, timeout=TIMEOUT) as response:
        body = response.read()
        status, header = response.status, response.headers.get("Server-Timing", "")
    elapsed = time.perf_counter() - started
    found = re.search(r"app;dur=([0-9.]+)", header)
    return status, body, elapsed, float(found.group(1)) if found else None


def label_loop(person: Annotator, args, ready: threading.Barrier, deadline: list[float]) -> None:
    rng = random.Random(person.name)
    label_url = f"/label/{args.testset}/"
    try:
        client = client_for(args.url, args.host, person.name, person.password, args.direct)
        client.log_in()
        status, body, _, _ = timed(client, "GET", label_url)
        if status != 200:
            raise RuntimeError(f"the labelling page answered {status}")
        state = json.loads(body)
    except Exception as exc:  # noqa: BLE001 (reported, and the run counts as failed)
        person.errors.append(f"start: {exc}")
        ready.abort()
        return
    try:
        ready.wait()
    except threading.BrokenBarrierError:  # another annotator could not start
        return
    next_at = time.monotonic() + (0 if args.lockstep else rng.uniform(0, args.pause))
    time.sleep(max(0.0, next_at - time.monotonic()))
    while time.monotonic() < deadline[0] and state.get("current"):
        image, label = state["current"]["id"], rng.choice(LABELS)
        try:
            status, body, elapsed, app = timed(client, "POST", f"{label_url}vote/",
                                               {"image": image, "label": label})
            if status != 200:
                raise RuntimeError(f"vote answered {status}: {body[:200]!r}")
            state = json.loads(body)
            person.times["vote"].append((elapsed, app))
            if state["vote"] != {"image": image, "label": label, "action": state["vote"]["action"]}:
                raise RuntimeError(f"sent {label!r}, the server answered {state['vote']}")
            person.votes[image] = label
            person.actions[state["vote"]["action"]] += 1
            shown = state.get("preload") or state.get("current")
            if shown:
                status, _, elapsed, app = timed(client, "GET", shown["src"])
                if status != 200:
                    raise RuntimeError(f"the image {shown['src']} answered {status}")
                person.times["next image"].append((elapsed, app))
        except Exception as exc:  # noqa: BLE001
            person.errors.append(f"image {image}: {exc}")
            return
        next_at += args.pause
        time.sleep(max(0.0, next_at - time.monotonic()) if args.pause else 0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(people: list[Annotator], seconds: float) -> tuple[list[str], dict]:
    lines, figures = [], {}
    n_votes = sum(len(p.times["vote"]) for p in people)
    figures["votes"], figures["seconds"] = n_votes, round(seconds, 1)
    figures["votes_per_second"] = round(n_votes / seconds, 1) if seconds else 0
    lines.append(f"{len(people)} annotators, {seconds:.1f} s: {n_votes} votes, "
                 f"{figures['votes_per_second']} votes/s")
    lines.append(f"{'':12s} {'n':>6s}   {'latency p50':>11s} {'p95':>7s} {'max':>7s}   {'app p50':>7s} {'p95':>7s}  (ms)")
    for kind in ("vote", "next image"):
        samples = [t for p in people for t in p.times[kind]]
        if not samples:
            continue
        latency = [1000 * s for s, _ in samples]
        app = [a for _, a in samples if a is not None]
        row = {"n": len(samples), "p50_ms": round(percentile(latency, 0.5), 1),
               "p95_ms": round(percentile(latency, 0.95), 1), "max_ms": round(max(latency), 1),
               "app_p50_ms": round(percentile(app, 0.5), 1) if app else None,
               "app_p95_ms": round(percentile(app, 0.95), 1) if app else None}
        figures[kind.replace(" ", "_")] = row
        app_text = f"{row['app_p50_ms']:7.1f} {row['app_p95_ms']:7.1f}" if app else f"{'-':>7s} {'-':>7s}"
        lines.append(f"{kind:12s} {row['n']:6d}   {row['p50_ms']:11.1f} {row['p95_ms']:7.1f} "
                     f"{row['max_ms']:7.1f}   {app_text}")
    return lines, figures


def check(people: list[Annotator], testset: str) -> list[str]:
    """What the database holds for the annotators, against what the server confirmed."""
    from annotator.models import Vote, VoteEvent

    problems = []
    for person in people:
        stored = dict(Vote.objects.filter(annotator__username=person.name, testset__name=testset)
                      .order_by().values_list("image_id", "label"))
        casts = Counter(VoteEvent.objects.filter(annotator__username=person.name, action="cast")
                        .values_list("image_id", flat=True))
        lost = {i for i in person.votes if stored.get(i) != person.votes[i]}
        extra = set(stored) - set(person.votes)
        doubled = {i for i, n in casts.items() if n > 1}
        if person.actions.keys() - {"cast"}:
            problems.append(f"{person.name}: the server answered {dict(person.actions)}: an image came back "
                            "after it was labelled")
        if lost or extra or doubled:
            problems.append(f"{person.name}: {len(lost)} lost or changed, {len(extra)} stored without a "
                            f"confirmation, {len(doubled)} cast twice")
        problems += [f"{person.name}: {error}" for error in person.errors]
    return problems


def setup_django(parser: argparse.ArgumentParser, testset: str):
    """Django with the server's settings (production unless DJANGO_SETTINGS_MODULE says
    otherwise); the user model. Stops with a usage error when the test set is not there."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from annotator.models import TestSet

    if not TestSet.objects.filter(name=testset).exists():
        parser.error(f"there is no test set {testset!r} in this database")
    return get_user_model()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (gunicorn) to load")
    parser.add_argument("--host", help="Host header to send (a name in ALLOWED_HOSTS), when not the URL's")
    parser.add_argument("--testset", required=True)
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0,
                        help="seconds from one vote of an annotator to the next (0: no pause)")
    parser.add_argument("--lockstep", action="store_true",
                        help="every annotator votes at the same moment of each pause (bursts); "
                             "by default each starts at a seeded random moment within the first pause")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the annotators vote")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the bench annotators and their votes")
    parser.add_argument("--direct", action="store_true",
                        help="plain http without the proxy's headers (a server not behind TLS, or a test)")
    args = parser.parse_args(argv)
    if not 1 <= args.annotators <= 200 or not 0 < args.seconds <= 3600 or args.pause < 0:
        parser.error("--annotators 1-200, --seconds up to 3600, --pause 0 or more")

    users = setup_django(parser, args.testset)
    people = []
    for n in range(1, args.annotators + 1):
        person = Annotator(f"{PREFIX}{n:02d}", secrets.token_urlsafe(12))
        user, _ = users.objects.get_or_create(username=person.name)
        user.votes.all().delete()  # a fresh start after an earlier run that kept them
        user.vote_events.all().delete()
        user.set_password(person.password)
        user.save()
        people.append(person)
    ready = threading.Barrier(len(people) + 1)
    deadline = [float("inf")]
    threads = [threading.Thread(target=label_loop, args=(p, args, ready, deadline), daemon=True) for p in people]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=120)
        late = []
    except threading.BrokenBarrierError:
        late = ["the annotators did not all log in and see an image within 120 s"]
    started = time.monotonic()
    deadline[0] = started + args.seconds
    for thread in threads:
        thread.join(timeout=args.seconds + 2 * TIMEOUT + 5)
    elapsed = time.monotonic() - started

    lines, figures = summary(people, elapsed)
    problems = late + check(people, args.testset)
    figures["problems"] = problems
    print("\n".join(lines))
    stored = sum(len(p.votes) for p in people)
    if problems:
        print(f"check FAILED ({stored} votes confirmed):")
        print("\n".join(f"  {line}" for line in problems[:40]))
    else:
        print(f"check: all {stored} confirmed votes stored as sent, each cast once; none lost, none doubled")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, **figures}, indent=2))
    if not args.keep:
        users.objects.filter(username__in=[p.name for p in people]).delete()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
