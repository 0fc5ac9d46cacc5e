"""Background jobs (``Job``): work too long for a request, kept with its result.

A page creates a job and starts it. With ``JOBS_IN_BACKGROUND`` (the default) a thread of
the server process runs it and the page answers at once, showing the job's progress until
it ends and its stored result (or error) afterwards; the test settings run a job at once,
inside the request. A process runs one job at a time, so a burst of clicks queues rather
than taking every core from the annotators.

Apps register what a kind of job does (``register``, from ``AppConfig.ready``): a handler
``handler(job, progress) -> result`` returning JSON-ready data, and the exception types
whose message is a sentence for the user. A job whose process ended before it finished
(a restart) stops sending heartbeats; after ``JOB_STALE_SECONDS`` it counts as failed and
can be started again. Whatever a job writes to the database in one transaction is then
rolled back with it (a vote import stores nothing).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from .errors import InputError
from .models import Job

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
LOST = ("It stopped without finishing: the server process that ran it ended (a restart?). "
        "Nothing of it was kept; start it again.")
UNEXPECTED = "An unexpected error stopped it; the server's error log has the details."

_handlers: dict[str, tuple[Callable, tuple[type[Exception], ...]]] = {}
_one_at_a_time = threading.Lock()
_running_here: set[int] = set()  # ids of the jobs this process runs now


def register(kind: str, handler: Callable, errors: tuple[type[Exception], ...] = (InputError,)) -> None:
    """``handler(job, progress)`` does jobs of ``kind``; an exception of ``errors`` ends the
    job with its message shown to the user, any other with ``UNEXPECTED``."""
    _handlers[kind] = (handler, errors)


def create(kind: str, *, testset=None, key: str = "", options: dict | None = None, user=None) -> Job:
    if kind not in _handlers:
        raise ValueError(f"no handler for jobs of kind {kind!r}; known: {', '.join(sorted(_handlers))}")
    creator = user if user is not None and user.is_authenticated else None
    return Job.objects.create(kind=kind, testset=testset, key=key, options=options or {},
                              created_by=creator, heartbeat_at=timezone.now())


def start(job: Job) -> Job:
    """Run ``job``: in a thread of its own (JOBS_IN_BACKGROUND), or now. Returns it as it stands."""
    if settings.JOBS_IN_BACKGROUND:
        threading.Thread(target=_run_in_thread, args=(job.pk,), name=f"job-{job.pk}", daemon=True).start()
    else:
        run(job.pk)
    job.refresh_from_db()
    return job


def _run_in_thread(job_id: int) -> None:
    try:
        run(job_id)
    finally:
        connection.close()  # this thread's own connection


class Progress:
    """What a handler calls to say how far it is: a stage, and optionally done / total.

    Written at most every half second, and only while the job's thread is not inside a
    transaction of its own (the page could not see it before the commit anyway).
    """

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.stage, self.last = None, 0.0

    def __call__(self, stage: str, done: int = 0, total: int | None = None) -> None:
        now = time.monotonic()
        if stage == self.stage and now - self.last < 0.5:
            return
        if connection.in_atomic_block:
            return
        self.stage, self.last = stage, now
        Job.objects.filter(pk=self.job_id).update(stage=stage[:200], done=done, total=total,
                                                  heartbeat_at=timezone.now())


def run(job_id: int) -> None:
    """Run the queued job ``job_id`` here and now, and store how it ended."""
    with _heartbeat(job_id):
        while not _one_at_a_time.acquire(timeout=HEARTBEAT_SECONDS):
            pass  # another job of this process runs; the heartbeat says this one still waits
    try:
        claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
        if not claimed:
            return  # gone, or already taken
        job = Job.objects.get(pk=job_id)
        handler, errors = _handlers[job.kind]
        _running_here.add(job_id)
        try:
            with _heartbeat(job_id):
                result = handler(job, Progress(job))
        except errors as exc:
            _finish(job_id, Job.Status.FAILED, error=str(exc))
        except Exception:
            logger.exception("job %s (%s) failed", job_id, job.kind)
            _finish(job_id, Job.Status.FAILED, error=UNEXPECTED)
            if not settings.JOBS_IN_BACKGROUND:
                raise
        else:
            _finish(job_id, Job.Status.DONE, result=result)
        finally:
            _running_here.discard(job_id)
    finally:
        _one_at_a_time.release()


def _finish(job_id: int, status: str, *, result=None, error: str = "") -> None:
    now = timezone.now()
    text = "" if result is None else json.dumps(result, allow_nan=False)
    Job.objects.filter(pk=job_id).update(status=status, result_json=text, error=error, finished_at=now,
                                         heartbeat_at=now)


class _heartbeat:
    """While the block runs, a thread stamps the job every HEARTBEAT_SECONDS on a connection
    of its own, so a job that spends minutes in one transaction still shows it is alive."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self.stop = threading.Event()

    def __enter__(self):
        if settings.JOBS_IN_BACKGROUND:
            self.thread = threading.Thread(target=self._beat, name=f"job-{self.job_id}-heartbeat",
                                           daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if settings.JOBS_IN_BACKGROUND:
            self.thread.join()

    def _beat(self):
        try:
            while not self.stop.wait(HEARTBEAT_SECONDS):
                try:
                    Job.objects.filter(pk=self.job_id).update(heartbeat_at=timezone.now())
                except DatabaseError:  # SQLite while the job holds the write lock: next time
                    pass
        finally:
            connection.close()


def is_lost(job: Job) -> bool:
    """Whether an unfinished job stopped sending heartbeats (its process ended)."""
    if not job.active or job.pk in _running_here:
        return False
    last = job.heartbeat_at or job.created_at
    return timezone.now() - last > timedelta(seconds=settings.JOB_STALE_SECONDS)


def current(job: Job) -> Job:
    """``job`` as stored now; a lost one is marked failed first."""
    job.refresh_from_db()
    if is_lost(job):
        Job.objects.filter(pk=job.pk, status=job.status).update(
            status=Job.Status.FAILED, error=LOST, finished_at=timezone.now())
        job.refresh_from_db()
    return job


def wait(job: Job, seconds: float) -> Job:
    """``job`` once it has ended, or as it stands after ``seconds``."""
    deadline = time.monotonic() + seconds
    job = current(job)
    while job.active and time.monotonic() < deadline:
        time.sleep(0.2)
        job = current(job)
    return job
