"""Large uploads of votes or images: the same imports, run as background jobs (``core.jobs``)
on the uploaded file, kept until the job ends."""
from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings

from core import jobs
from core.errors import MAX_LISTED_PROBLEMS
from core.models import Job

from .image_import import default_testset_name, import_testset
from .models import TestSet
from .testsets import LabelScheme, Overlap, resolve_testset
from .vote_import import import_votes

# --- large uploads: the same import, in the background ---------------------------------

VOTE_IMPORT_JOB = "import_votes"


def _keep_upload(upload, folder: Path, suffix: str) -> Path:
    """The uploaded file, written under a random name in ``folder`` for the job to read."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


def _vote_upload_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "vote-uploads"


def queue_vote_import(upload, *, testset: TestSet | str | None, overwrite: bool = False, user=None):
    """Hand an uploaded votes csv to a background job that runs ``import_votes`` on it.

    The upload is kept in MEDIA_ROOT/vote-uploads/ until the job ends; the staff import page
    shows the job's progress and then its report (or its error, and nothing stored).
    """
    if not isinstance(testset, TestSet):
        testset = resolve_testset(testset)
    path = _keep_upload(upload, _vote_upload_folder(), ".csv")
    job = jobs.create(VOTE_IMPORT_JOB, testset=testset, user=user, options={
        "file": path.name, "name": PurePosixPath(upload.name or "votes.csv").name,
        "size": upload.size, "overwrite": overwrite,
    })
    return jobs.start(job)


def vote_import_job(job, progress) -> dict:
    """The background job of ``queue_vote_import``: its report's summary and listed rows.

    Safe to run again after its worker ended: the import is one transaction, so a run that
    died stored nothing, or (killed while committing) all of it, which the next run finds
    stored and reports as such."""
    path = _vote_upload_folder() / job.options["file"]
    progress("importing")
    report = import_votes(path, testset=job.testset, overwrite=job.options["overwrite"],
                          name=job.options["name"])
    return {"summary": report.summary(), "problems": report.problems(limit=MAX_LISTED_PROBLEMS)}


def remove_uploaded_votes(job) -> None:
    """The uploaded file of a vote import, once the job has ended (done, failed or given up)."""
    (_vote_upload_folder() / job.options["file"]).unlink(missing_ok=True)


# --- large zips of images: the same import, in the background ---------------------------

IMAGE_IMPORT_JOB = "import_images"


def _image_upload_folder() -> Path:
    return Path(settings.MEDIA_ROOT) / "image-uploads"


def queue_image_import(upload, *, name: str | None, detect_faces: bool = False, min_face: int = 0,
                       scheme: LabelScheme | None = None, overlap: Overlap | None = None, user=None):
    """Hand an uploaded zip of images to a background job that runs ``import_testset`` on it.

    The zip is kept in MEDIA_ROOT/image-uploads/ until the job ends. The import is safe to
    run again: images already imported are recognised by their content and skipped, so a run
    whose worker ended is resumed where it stopped."""
    path = _keep_upload(upload, _image_upload_folder(), ".zip")
    job = jobs.create(IMAGE_IMPORT_JOB, user=user, options={
        "file": path.name, "name": PurePosixPath(upload.name or "images.zip").name, "size": upload.size,
        "testset": name, "detect_faces": detect_faces, "min_face": min_face,
        "scheme": None if scheme is None else vars(scheme) | {"custom_labels": list(scheme.custom_labels),
                                                              "extra_answers": list(scheme.extra_answers)},
        "overlap": None if overlap is None else vars(overlap),
    })
    return jobs.start(job)


def image_import_job(job, progress) -> dict:
    """The background job of ``queue_image_import``: the import's summary and problems."""
    options = job.options
    path = _image_upload_folder() / options["file"]
    progress("importing the images")
    scheme = options.get("scheme")
    report = import_testset(
        path, name=options["testset"] or default_testset_name(options["name"]),
        detect_faces=options["detect_faces"], min_face=options["min_face"],
        scheme=None if scheme is None else LabelScheme(scheme["scheme"], tuple(scheme["custom_labels"]),
                                                       tuple(scheme["extra_answers"])),
        overlap=None if options.get("overlap") is None else Overlap(**options["overlap"]),
        progress=progress,
    )
    if report.testset.pk is not None:
        Job.objects.filter(pk=job.pk).update(testset=report.testset)
    return {"summary": report.summary(), "problems": report.problems()[:MAX_LISTED_PROBLEMS],
            "testset": report.testset.name}


def remove_uploaded_images(job) -> None:
    (_image_upload_folder() / job.options["file"]).unlink(missing_ok=True)
