"""Background jobs: how a job ends and what is kept, jobs whose worker ended, and the
queue's worker in the server process."""
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from core import jobs
from core.errors import InputError
from core.models import Job

RELEASE = threading.Event()


def add(job, progress):
    progress("adding", 1, 2)
    if job.options.get("wait"):
        assert RELEASE.wait(30)
    return {"sum": sum(job.options["numbers"])}


def refuse(job, progress):
    raise InputError("The numbers are not usable: 'x' is not a number.")


def crash(job, progress):
    raise RuntimeError("a bug")


@pytest.fixture(autouse=True)
def kinds():
    for kind, handler in [("test-add", add), ("test-refuse", refuse), ("test-crash", crash)]:
        jobs.register(kind, handler)
    RELEASE.clear()
    yield
    RELEASE.set()
    for kind in ("test-add", "test-refuse", "test-crash"):
        jobs._kinds.pop(kind)


@pytest.mark.django_db
def test_a_job_keeps_its_result():
    job = jobs.start(jobs.create("test-add", options={"numbers": [1, 2, 3]}))
    assert (job.status, job.result, job.error) == ("done", {"sum": 6}, "")
    assert job.started_at <= job.finished_at and job.seconds >= 0 and not job.active


@pytest.mark.django_db
def test_a_refused_job_keeps_its_sentence():
    job = jobs.start(jobs.create("test-refuse"))
    assert (job.status, job.result) == ("failed", None)
    assert job.error == "The numbers are not usable: 'x' is not a number."


@pytest.mark.django_db
def test_an_unexpected_error_is_logged_not_shown_and_raised_when_run_at_once(caplog):
    job = jobs.create("test-crash")
    with pytest.raises(RuntimeError, match="a bug"):
        jobs.start(job)
    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", jobs.UNEXPECTED)
    assert "a bug" in caplog.text


@pytest.mark.django_db
def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="no handler for jobs of kind 'sums'; known: .*test-add"):
        jobs.create("sums")


@pytest.mark.django_db
def test_a_job_that_lost_its_worker_is_run_again_up_to_three_times(settings):
    job = jobs.create("test-add", options={"numbers": [1]})
    Job.objects.filter(pk=job.pk).update(status="running", attempts=1,
                                         heartbeat_at=timezone.now() - timedelta(seconds=30))
    assert jobs.current(job).status == "running"  # its heartbeat is recent enough
    Job.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1))
    again = jobs.current(job)  # queued again, and here (jobs run at once) done
    assert (again.status, again.result, again.attempts) == ("done", {"sum": 1}, 2)
    Job.objects.filter(pk=job.pk).update(status="running", attempts=jobs.MAX_ATTEMPTS,
                                         heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS + 1))
    lost = jobs.current(job)
    assert (lost.status, lost.error) == ("failed", jobs.lost_message(3)) and lost.finished_at
    # and it is not run again by a late worker
    jobs.run(job.pk)
    assert jobs.current(job).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_in_the_background_one_job_runs_at_a_time_and_says_how_far_it_is(background_jobs):
    first = jobs.start(jobs.create("test-add", options={"numbers": [1, 2], "wait": True}))
    second = jobs.start(jobs.create("test-add", options={"numbers": [3]}))
    deadline = time.monotonic() + 20
    while jobs.current(first).stage != "adding" and time.monotonic() < deadline:
        time.sleep(0.05)
    first, second = jobs.current(first), jobs.current(second)
    assert (first.status, first.stage, first.done, first.total) == ("running", "adding", 1, 2)
    assert second.status == "queued"  # waits for the first: a worker runs one job at a time
    RELEASE.set()
    first, second = jobs.wait(first, 20), jobs.wait(second, 20)
    assert (first.status, first.result, second.status, second.result) == ("done", {"sum": 3}, "done", {"sum": 3})
    assert first.finished_at <= second.started_at
