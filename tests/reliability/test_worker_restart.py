"""A background job survives its worker: a real ``manage.py run_worker`` process is killed
(SIGKILL, nothing cleaned up) in the middle of a report and in the middle of a vote
import, on PostgreSQL; a worker started again queues the lost job again and completes it,
with nothing doubled (the votes stored once) and nothing left behind (the uploaded file
removed, the job not left "running").

To stop the worker at a known point, the test holds a lock on the votes table: the job
waits on it inside its work, the worker is killed there, and the lock is released. (A
PostgreSQL backend whose client died finishes the statement it waits on and then ends its
transaction unfinished, so nothing of the killed run is committed.)
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from annotator.import_jobs import VOTE_IMPORT_JOB, queue_vote_import
from annotator.models import Vote
from core import jobs
from core.models import Job
from evaluation import report_jobs
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.evaluation.conftest import bkmin_checkpoint  # noqa: F401  (a tiny trained model, reused)
from tests.evaluation.helpers import run_command, write_study

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
STALE_SECONDS = 2


@pytest.fixture(autouse=True)
def on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("kills a worker while PostgreSQL holds its transaction open (make test runs this "
                    "on PostgreSQL when TEST_DATABASE_URL is set)")


@pytest.fixture
def queue(settings):
    """Jobs go onto the database's queue and no thread of this process takes them."""
    settings.JOBS_IN_BACKGROUND = True
    settings.JOBS_WORKER_IN_PROCESS = False
    settings.JOB_STALE_SECONDS = STALE_SECONDS


class Worker:
    """``manage.py run_worker`` in a process of its own, on this test's database."""

    def __init__(self, log: Path, model_dir: Path | None = None):
        db = connection.settings_dict
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))} | {
            "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": url,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT), "JOB_STALE_SECONDS": str(STALE_SECONDS),
            "JOBS_WORKER_IN_PROCESS": "0", "OMP_NUM_THREADS": "1", "DEBUG": "0",
        }
        if model_dir is not None:
            env["FERML_MODEL_DIR"] = str(model_dir)
        self.log = log.open("a")
        self.process = subprocess.Popen([sys.executable, "manage.py", "run_worker", "--interval", "0.2"],
                                        cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def wait_until(condition, seconds: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.1)


def a_backend_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] > 0


def kill_while_it_waits_on_the_votes(job: Job, worker: Worker) -> None:
    """Hold the votes table until the job's worker waits on it, kill the worker, release."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Vote._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        wait_until(lambda: Job.objects.filter(pk=job.pk, status="running").exists(), what="the worker to start the job")
        wait_until(a_backend_waits_on_a_lock, what="the job to wait on the votes")
        worker.kill()
    wait_until(lambda: not a_backend_waits_on_a_lock(), 30, "the killed worker's backend to end")


def test_a_report_whose_worker_was_killed_is_completed_by_the_next(queue, tmp_path, fer_sample_csv,
                                                                   ferplus_sample_csv, bkmin_checkpoint):  # noqa: F811
    study = write_study(tmp_path / "study", fer_sample_csv, ferplus_sample_csv, limit=40)
    run_command("import_testset", str(study.images), "--name", "study")
    run_command("import_votes", str(study.votes_csv), "--testset", "study")
    from annotator.models import TestSet

    options = {"holdout": "all", "reference": "majority", "min_images": 2, "labels": "bin3",
               "models": ["bkmin"], "seed": 0}
    job = report_jobs.request_report(TestSet.objects.get(name="study"), options)
    first = Worker(tmp_path / "worker.log", bkmin_checkpoint.parent)
    try:
        kill_while_it_waits_on_the_votes(job, first)
    finally:
        first.stop()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)  # left behind by the killed worker
    time.sleep(STALE_SECONDS + 1)
    second = Worker(tmp_path / "worker.log", bkmin_checkpoint.parent)
    try:
        wait_until(lambda: Job.objects.get(pk=job.pk).status in ("done", "failed"), 180, "the report")
    finally:
        second.stop()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.error) == ("done", 2, ""), (tmp_path / "worker.log").read_text()
    assert [m["name"] for m in job.result["report"]["models"]] == ["bkmin"]
    assert Job.objects.count() == 1


def test_a_vote_import_whose_worker_was_killed_stores_every_row_once(queue, tmp_path, fer_sample_csv,
                                                                     ferplus_sample_csv):
    study = write_study(tmp_path / "study", fer_sample_csv, ferplus_sample_csv, limit=40)
    run_command("import_testset", str(study.images), "--name", "study")
    data = study.votes_csv.read_bytes()
    n_rows = data.count(b"\n") - 1
    upload = io.BytesIO(data)
    upload.name, upload.size = "votes.csv", len(data)
    upload.chunks = lambda: iter([data])
    job = queue_vote_import(upload, testset="study")
    uploaded = Path(settings.MEDIA_ROOT) / "vote-uploads" / job.options["file"]
    assert uploaded.exists()
    first = Worker(tmp_path / "worker.log")
    try:
        kill_while_it_waits_on_the_votes(job, first)
    finally:
        first.stop()
    assert not Vote.objects.exists()  # the killed run's transaction was never committed
    assert uploaded.exists() and Job.objects.get(pk=job.pk).status == "running"
    time.sleep(STALE_SECONDS + 1)
    second = Worker(tmp_path / "worker.log")
    try:
        wait_until(lambda: jobs.current(Job.objects.get(pk=job.pk)).status in ("done", "failed"), 180,
                   "the import")
    finally:
        second.stop()
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("done", 2), (tmp_path / "worker.log").read_text()
    assert f"{n_rows} new" in job.result["summary"]
    assert Vote.objects.count() == n_rows  # every row once: none lost, none doubled
    assert not uploaded.exists()  # and the upload is gone
    assert Job.objects.filter(kind=VOTE_IMPORT_JOB).count() == 1
