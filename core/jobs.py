"""Background jobs (``Job``): work too long for a request, kept with its result.

A page creates a job and starts it. With ``JOBS_IN_BACKGROUND`` (the default) the job goes
onto a queue in the database, through Django's tasks API (the ``django-tasks`` backport of
Django 6's ``django.tasks``, with the ``django-tasks-db`` backend): a worker process
(``manage.py run_worker``, started beside the web server by ``make serve-production``, or
on another machine that reaches the same database) takes it and runs it, one job at a
time, and the page shows its progress until it ends and its stored result (or error)
afterwards. With ``JOBS_WORKER_IN_PROCESS`` (the demo and development) a worker thread in
the web server process takes the queue, so nothing else needs starting. The test settings
run a job at once, inside the request.

Apps register what a kind of job does (``register``, from ``AppConfig.ready``): a handler
``handler(job, progress) -> result`` returning JSON-ready data, the exception types whose
message is a sentence for the user, and a ``cleanup(job)`` that removes what the job
leaves behind (an uploaded file) once it has ended, however it ended.

A job whose worker ended before it finished (a restart, a crash, a killed process) stops
sending heartbeats; after ``JOB_STALE_SECONDS`` it is queued again (``recover``), up to
``MAX_ATTEMPTS`` runs in all, so every handler must be safe to run again: what it writes in
one transaction is rolled back with a run that dies (a vote import stores all or nothing,
and a second run finds what the first committed), and a report is computed anew.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from .errors import InputError
from .models import Job

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
MAX_ATTEMPTS = 3
UNEXPECTED = "An unexpected error stopped it; the server's error log has the details."


def lost_message(attempts: int) -> str:
    return (f"It stopped without finishing {attempts} time(s): the worker process that ran it ended "
            "each time (a restart, or the machine ran out of memory?); start it again.")


@dataclass(frozen=True)
class Kind:
    handler: Callable
    errors: tuple[type[Exception], ...]
    cleanup: Callable | None


_kinds: dict[str, Kind] = {}
_one_at_a_time = threading.Lock()
_running_here: set[int] = set()  # ids of the jobs this process runs now


def register(kind: str, handler: Callable, errors: tuple[type[Exception], ...] = (InputError,),
             cleanup: Callable | None = None) -> None:
    """``handler(job, progress)`` does jobs of ``kind``; an exception of ``errors`` ends the
    job with its message shown to the user, any other with ``UNEXPECTED``; ``cleanup(job)``
    runs once the job has ended for good."""
    _kinds[kind] = Kind(handler, errors, cleanup)


def create(kind: str, *, testset=None, key: str = "", options: dict | None = None, user=None) -> Job:
    if kind not in _kinds:
        raise ValueError(f"no handler for jobs of kind {kind!r}; known: {', '.join(sorted(_kinds))}")
    creator = user if user is not None and user.is_authenticated else None
    return Job.objects.create(kind=kind, testset=testset, key=key, options=options or {},
                              created_by=creator, heartbeat_at=timezone.now())


@task()
def run_job(job_id: int) -> None:
    """The queue's task: run one job (a worker calls this)."""
    run(job_id)


def start(job: Job) -> Job:
    """Queue ``job`` for a worker (JOBS_IN_BACKGROUND), or run it now. Returns it as it stands."""
    if settings.JOBS_IN_BACKGROUND:
        result = run_job.enqueue(job.pk)
        Job.objects.filter(pk=job.pk).update(task_id=str(result.id))
        if settings.JOBS_WORKER_IN_PROCESS:
            in_process_worker.ensure_running()
    else:
        run(job.pk)
    job.refresh_from_db()
    return job


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
    with _one_at_a_time:
        now = timezone.now()
        claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=now, heartbeat_at=now, stage="", done=0, total=None)
        if not claimed:
            return  # gone, already taken, or given up
        Job.objects.filter(pk=job_id).update(attempts=F("attempts") + 1)
        job = Job.objects.get(pk=job_id)
        kind = _kinds[job.kind]
        _running_here.add(job_id)
        try:
            with _heartbeat(job_id):
                result = kind.handler(job, Progress(job))
        except kind.errors as exc:
            _finish(job, Job.Status.FAILED, error=str(exc))
        except Exception:
            logger.exception("job %s (%s) failed", job_id, job.kind)
            _finish(job, Job.Status.FAILED, error=UNEXPECTED)
            if not settings.JOBS_IN_BACKGROUND:
                raise
        else:
            _finish(job, Job.Status.DONE, result=result)
        finally:
            _running_here.discard(job_id)


def _finish(job: Job, status: str, *, result=None, error: str = "") -> None:
    now = timezone.now()
    text = "" if result is None else json.dumps(result, allow_nan=False)
    Job.objects.filter(pk=job.pk).update(status=status, result_json=text, error=error, finished_at=now,
                                         heartbeat_at=now)
    _clean_up(job)


def _clean_up(job: Job) -> None:
    kind = _kinds.get(job.kind)
    if kind is not None and kind.cleanup is not None:
        try:
            kind.cleanup(job)
        except OSError:
            logger.exception("job %s (%s): its files could not be removed", job.pk, job.kind)


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


# --- jobs whose worker ended ----------------------------------------------------------------


def is_lost(job: Job) -> bool:
    """Whether a running job stopped sending heartbeats (its worker ended)."""
    if job.status != Job.Status.RUNNING or job.pk in _running_here:
        return False
    last = job.heartbeat_at or job.created_at
    return timezone.now() - last > timedelta(seconds=settings.JOB_STALE_SECONDS)


def recover(job: Job) -> Job:
    """A lost job queued again, or (after ``MAX_ATTEMPTS`` runs) failed with the reason."""
    from django_tasks_db.models import DBTaskResult

    if not is_lost(job):
        return job
    # the task its worker had claimed will never finish: the queue marks it failed
    if job.task_id:
        DBTaskResult.objects.filter(pk=job.task_id, status="RUNNING").update(
            status="FAILED", finished_at=timezone.now())
    if job.attempts >= MAX_ATTEMPTS:
        given_up = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED, error=lost_message(job.attempts), finished_at=timezone.now())
        if given_up:
            _clean_up(job)
    else:
        queued = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=Job.Status.QUEUED, stage="queued again: the worker that ran it ended",
            heartbeat_at=timezone.now())
        if queued:
            logger.warning("job %s (%s) lost its worker; queued again (run %s of at most %s)",
                           job.pk, job.kind, job.attempts + 1, MAX_ATTEMPTS)
            start(Job.objects.get(pk=job.pk))
    job.refresh_from_db()
    return job


def recover_lost() -> int:
    """Queue again (or give up) every lost job; how many there were."""
    lost = [job for job in Job.objects.filter(status=Job.Status.RUNNING) if is_lost(job)]
    for job in lost:
        recover(job)
    return len(lost)


def current(job: Job) -> Job:
    """``job`` as stored now; a lost one is queued again (or failed) first."""
    job.refresh_from_db()
    return recover(job)


def wait(job: Job, seconds: float) -> Job:
    """``job`` once it has ended, or as it stands after ``seconds``."""
    deadline = time.monotonic() + seconds
    job = current(job)
    while job.active and time.monotonic() < deadline:
        time.sleep(0.2)
        job = current(job)
    return job


# --- a worker inside the web server process (the demo, development) ------------------------


class InProcessWorker:
    """django-tasks-db's worker loop in a thread of this process, started with the first job."""

    def __init__(self):
        self._lock = threading.Lock()
        self._worker = None
        self._thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        from django.utils.crypto import get_random_string
        from django_tasks_db.management.commands.db_worker import Worker

        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._worker = Worker(queue_names=["default"], interval=0.5, batch=False, backend_name="default",
                                  startup_delay=False, max_tasks=None, excluded_queue_names=[],
                                  worker_id=f"in-process-{get_random_string(12)}")
            self._thread = threading.Thread(target=self._run, args=(self._worker,), name="jobs-worker",
                                            daemon=True)
            self._thread.start()

    @staticmethod
    def _run(worker) -> None:
        try:
            worker.run()
        finally:
            connection.close()

    def stop(self, timeout: float = 30) -> None:
        """Let the loop end after its current job (tests; a process that shuts down)."""
        with self._lock:
            worker, thread = self._worker, self._thread
            self._worker = self._thread = None
        if worker is not None:
            worker.running = False
            thread.join(timeout)


in_process_worker = InProcessWorker()
