"""The annotator quality figures of a FER+-sized study, timed.

Builds a test set of its own (``quality-bench``, deleted afterwards with its annotators
``qbench-01`` ...) in the database the settings name: ``--images`` images without files and
``--annotators`` annotators who each vote on 95 % of them (a seeded draw: the image's label
75 % of the time, another at random otherwise, 0.5 to 4 s a vote; 341,000 votes with the
defaults, as FER+). It then times ``services.annotator_quality`` and the quality page
(Django's test client, in this process) ``--repeat`` times and prints the median and the
slowest. Run it with the database of the server you want to measure, e.g. PostgreSQL:

    DATABASE_URL=postgres://fer:PASSWORD@127.0.0.1:5432/fer .venv/bin/python -m scripts.benchmark_quality
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=35_887)
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from annotator.models import Image, TestSet, Vote
    from evaluation import services

    users = get_user_model()
    TestSet.objects.filter(name="quality-bench").delete()
    users.objects.filter(username__startswith="qbench-").delete()
    testset = TestSet.objects.create(name="quality-bench")
    try:
        started = time.perf_counter()
        Image.objects.bulk_create(
            [Image(testset=testset, key=f"q{i:05d}.png", file=f"quality-bench/{i}.png", sha256=f"{i:064x}",
                   width=48, height=48) for i in range(args.images)], batch_size=5000)
        people = [users.objects.create_user(f"qbench-{n:02d}") for n in range(args.annotators)]
        rng = random.Random(args.seed)
        labels = testset.labels
        votes = []
        for pk in Image.objects.filter(testset=testset).values_list("pk", flat=True):
            truth = rng.choice(labels)
            for person in people:
                if rng.random() < 0.95:
                    label = truth if rng.random() < 0.75 else rng.choice(labels)
                    votes.append(Vote(image_id=pk, annotator=person, testset=testset, label=label,
                                      time_spent_ms=rng.randint(500, 4000)))
        Vote.objects.bulk_create(votes, batch_size=10_000)
        print(f"built {args.images:,} images, {len(votes):,} votes of {args.annotators} annotators "
              f"in {time.perf_counter() - started:.0f} s")

        def timed(action) -> list[float]:
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                action()
                times.append(time.perf_counter() - started)
            return times

        setup_test_environment()
        staff = users.objects.create_user("qbench-staff", is_staff=True)
        client = Client()
        client.force_login(staff)

        def page():
            assert client.get("/evaluation/quality-bench/quality/", HTTP_HOST="127.0.0.1").status_code == 200

        for name, action in [("annotator_quality", lambda: services.annotator_quality(testset)),
                             ("quality page", page)]:
            times = timed(action)
            print(f"{name}: median {statistics.median(times):.3f} s, slowest {max(times):.3f} s "
                  f"({args.repeat} runs)")
    finally:
        testset.delete()
        users.objects.filter(username__startswith="qbench-").delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
