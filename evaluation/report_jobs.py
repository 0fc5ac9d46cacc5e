"""The staff report page's benchmark as a kept background job (``core.jobs``).

A report is found by its test set and its choices (held-out annotator, reference, labels,
models, seed, panel minimum). The page shows the newest report for its choices: its
progress while it is computed, then the stored result. A new one is computed when there is
none yet, when the last one failed, when staff ask for it ("Compute again"), and by itself
when the votes have changed since and the last one took at most ``QUICK_SECONDS``: a small
study's report stays current, a large study's is recomputed when staff ask.
"""
from __future__ import annotations

import hashlib
import json

from django.db.models import Count, Max

from annotator.models import TestSet, Vote
from core import jobs
from core.errors import InputError
from core.models import Job

from . import services, uploads

KIND = "benchmark"
QUICK_SECONDS = 10
KEPT = 5  # reports kept per test set and choices


def report_options(choice: dict) -> dict:
    """The choices of the report form (its cleaned data) as the job keeps them."""
    options = {
        "holdout": choice["holdout"], "reference": choice["reference"],
        "min_images": choice["min_images"], "labels": choice["labels"],
        "models": list(choice["models"]), "seed": choice["seed"] or 0,
    }
    if choice.get("margin") is not None:  # kept out otherwise: earlier reports keep their key
        options["margin"] = choice["margin"]
    if choice.get("uploads"):
        options["uploads"] = sorted(choice["uploads"])
    return options


def report_key(options: dict) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def data_signature(testset: TestSet) -> dict:
    """What the report depends on besides its choices: the votes (their number and the time of
    the last change) and the images."""
    votes = Vote.objects.filter(testset=testset).order_by().aggregate(n=Count("id"), last=Max("updated_at"))
    return {
        "votes": votes["n"], "last_vote": votes["last"].isoformat() if votes["last"] else None,
        "images": testset.images.count(), "repeated_files": testset.repeated_files.count(),
    }


def compute(job: Job, progress) -> dict:
    """The job's handler: the benchmark of ``job.testset`` with its choices, and the data it
    saw. A request the benchmark cannot serve ends the job with its sentence."""
    options = job.options
    data = data_signature(job.testset)
    uploaded, files = uploads.as_models(options.get("uploads", []))
    try:
        report = services.run_benchmark(
            job.testset, options["models"] + uploaded, holdout=options["holdout"], labels=options["labels"],
            seed=options["seed"], reference=options["reference"], min_images=options["min_images"],
            progress=progress, margin=services.check_margin(options.get("margin")), prediction_files=files,
        )
    except services.BenchmarkError as err:
        raise InputError(str(err)) from None
    return {"report": report, "data": data}


def newest(testset: TestSet, options: dict) -> Job | None:
    job = (Job.objects.filter(kind=KIND, testset=testset, key=report_key(options))
           .order_by("-created_at", "-id").first())
    return job and jobs.current(job)


def is_outdated(job: Job) -> bool:
    """Whether the votes or images changed since ``job`` computed its report."""
    return job.status == Job.Status.DONE and job.result["data"] != data_signature(job.testset)


def request_report(testset: TestSet, options: dict, user=None, *, again: bool = False) -> Job:
    """The report job the page shows for these choices, started first when one is due."""
    job = newest(testset, options)
    if job is not None and job.active:
        return job
    due = (
        job is None or again or job.status == Job.Status.FAILED
        or ((job.seconds or 0) <= QUICK_SECONDS and is_outdated(job))
    )
    if not due:
        return job
    job = jobs.create(KIND, testset=testset, key=report_key(options), options=options, user=user)
    _forget_old(testset, job.key)
    return jobs.start(job)


def _forget_old(testset: TestSet, key: str) -> None:
    """Keep the newest KEPT reports of these choices; older ones are never shown again."""
    old = list(Job.objects.filter(kind=KIND, testset=testset, key=key).order_by("-created_at", "-id")
               .values_list("id", flat=True)[KEPT:])
    Job.objects.filter(pk__in=old).exclude(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).delete()


def job_of(testset: TestSet, job_id) -> Job | None:
    """The report job ``job_id`` of ``testset`` (the page's ``?job=``), or None."""
    try:
        job = Job.objects.get(kind=KIND, testset=testset, pk=int(job_id))
    except (Job.DoesNotExist, TypeError, ValueError, OverflowError):
        return None
    return jobs.current(job)
