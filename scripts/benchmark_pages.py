"""The staff pages of a study, timed on a running server.

A staff account of its own (``bench-staff``, deleted afterwards) logs in through the login
form and opens each staff page ``--repeat`` times: the dashboard, the reports index, the
import page, the admin's lists, the labelling page, the test set's design and progress, the
annotator quality page, and the first piece of each download
(majority csv, raw votes csv, zip). It prints the median and the slowest time per page
(until the whole answer arrived; for a download, until its first piece) and the server's
own time (``Server-Timing``). With ``--report`` it then opens the human-vs-AI report page
with its default choices (every model), which starts the benchmark in the background,
reads the report's JSON until it is there, and prints how long that took, then opens the
page again (the stored report). Run it like ``scripts/benchmark_votes.py``, with the
server's settings in the environment:

    .venv/bin/python -m scripts.benchmark_pages --url http://127.0.0.1:8000 --testset ferplus --report
"""
from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time

from scripts.benchmark_votes import TIMEOUT, client_for, setup_django

PAGES = [
    ("dashboard", "/staff/"),
    ("reports index", "/evaluation/"),
    ("import page", "/staff/import/"),
    ("admin: test sets", "/admin/annotator/testset/"),
    ("admin: images", "/admin/annotator/image/"),
    ("admin: votes", "/admin/annotator/vote/"),
    ("admin: vote history", "/admin/annotator/voteevent/"),
    ("labelling page", "/label/{testset}/"),
    ("test set design and progress", "/staff/testsets/{testset}/"),
    ("annotator quality", "/evaluation/{testset}/quality/"),
]
DOWNLOADS = [
    ("majority csv", "/staff/export/{testset}/csv/"),
    ("raw votes csv", "/staff/export/{testset}/votes/"),
    ("zip", "/staff/export/{testset}/zip/"),
]


def fetch(client, path: str, *, first_piece: bool = False) -> tuple[int, float, float | None]:
    """(status, seconds until the answer, or its first 64 KiB, arrived; the app's ms or None)."""
    started = time.perf_counter()
    with client.open("GET", path, as_json=False, timeout=TIMEOUT) as response:
        if first_piece:
            response.read(65536)
        else:
            response.read()
        status, header = response.status, response.headers.get("Server-Timing", "")
    elapsed = time.perf_counter() - started
    app = header.split("dur=", 1)[1] if "dur=" in header else None
    return status, elapsed, float(app) if app else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--host", help="Host header to send (a name in ALLOWED_HOSTS), when not the URL's")
    parser.add_argument("--testset", required=True)
    parser.add_argument("--repeat", type=int, default=5, help="times each page is opened")
    parser.add_argument("--report", action="store_true",
                        help="also compute the human-vs-AI report (every model) and time it")
    parser.add_argument("--report-timeout", type=float, default=3600, help="seconds to wait for the report")
    parser.add_argument("--direct", action="store_true", help="plain http without the proxy's headers")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 100:
        parser.error("--repeat 1-100")

    users = setup_django(parser, args.testset)
    password = secrets.token_urlsafe(12)
    staff, _ = users.objects.get_or_create(username="bench-staff")
    staff.is_staff = staff.is_superuser = True
    staff.set_password(password)
    staff.save()
    failed = False
    try:
        client = client_for(args.url, args.host, staff.username, password, args.direct)
        client.log_in()
        print(f"{'page':22s} {'median':>8s} {'slowest':>8s} {'app median':>10s}  (ms; a download: its first 64 KiB)")
        for name, path, first in [*((n, p, False) for n, p in PAGES), *((n, p, True) for n, p in DOWNLOADS)]:
            path = path.format(testset=args.testset)
            runs = [fetch(client, path, first_piece=first) for _ in range(args.repeat)]
            if any(status != 200 for status, _, _ in runs):
                print(f"{name:22s} answered {sorted({s for s, _, _ in runs})}")
                failed = True
                continue
            seconds = [1000 * s for _, s, _ in runs]
            app = [a for _, _, a in runs if a is not None]
            app_text = f"{statistics.median(app):10.1f}" if app else f"{'-':>10s}"
            print(f"{name:22s} {statistics.median(seconds):8.1f} {max(seconds):8.1f} {app_text}")
        if args.report:
            failed |= time_report(client, args)
    finally:
        users.objects.filter(pk=staff.pk).delete()
    return 1 if failed else 0


def time_report(client, args) -> bool:
    """Open the report page (it starts the benchmark), wait for the JSON, open the page again.
    True when something failed."""
    page = f"/evaluation/{args.testset}/"
    started = time.perf_counter()
    status, first, _ = fetch(client, page)
    print(f"report page, first visit: {status} in {1000 * first:.0f} ms (it starts the computation)")
    deadline = started + args.report_timeout
    while time.perf_counter() < deadline:
        status, _, _ = fetch(client, f"/evaluation/{args.testset}/report.json")
        if status != 202:
            break
        time.sleep(2)
    print(f"report computed: {status} after {time.perf_counter() - started:.1f} s")
    status, again, app = fetch(client, page)
    print(f"report page with the stored report: {status} in {1000 * again:.0f} ms"
          + (f" (app {app:.0f} ms)" if app is not None else ""))
    return status != 200


if __name__ == "__main__":
    sys.exit(main())
