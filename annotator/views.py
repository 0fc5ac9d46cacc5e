"""Thin views over annotator.voting, .image_import, .vote_import, .import_jobs, .exporting and .dashboard.

Annotators see images and their own progress only, never anyone's votes or a majority;
everything else here is staff only.
"""
from pathlib import PurePosixPath

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import DatabaseError
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from core import errors, jobs
from core.access import staff_required
from core.errors import InputError, form_errors_text, text_response
from core.models import Job

from . import controls, dashboard, exporting, image_import, import_jobs, vote_import, voting
from .forms import (
    ControlImageForm,
    DesignForm,
    ExportForm,
    ImportControlsForm,
    ImportImagesForm,
    ImportVotesForm,
)
from .models import Image, TestSet
from .testsets import describe_design, do_set_overlap, resolve_testset

# Background imports the import page lists per kind, newest first.
RECENT_VOTE_IMPORTS = 5


def _wants_json(request) -> bool:
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
def home(request):
    if request.user.is_staff:
        return redirect("annotator:dashboard")
    testsets = list(TestSet.objects.all())
    if len(testsets) == 1:
        return redirect("annotator:label", testset=testsets[0].name)
    rows = [(t, voting.progress(request.user, t)) for t in testsets]
    return render(request, "annotator/home.html", {"rows": rows})


# --- labelling ------------------------------------------------------------------------


def _image_json(testset, image_id):
    if image_id is None:
        return None
    return {"id": image_id, "src": reverse("annotator:image", args=[testset.name, image_id])}


def _progress_text(testset, state) -> str:
    if testset.pooled:
        return (f"{state.progress.done} / {state.progress.total} images complete · "
                f"your votes: {state.votes}")
    return f"{state.progress.done} / {state.progress.total}"


def _state_json(testset, state, **extra):
    current = _image_json(testset, state.current)
    if current:
        current["shown"] = voting.shown_token(state.current)
    return JsonResponse({
        **extra,
        "current": current,
        "preload": _image_json(testset, state.preload),
        "progress": {"done": state.progress.done, "total": state.progress.total},
        **({"progress_text": _progress_text(testset, state)} if testset.pooled else {}),
    })


@login_required
@require_GET
def label(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    skipped = _int_or_none(request.GET.get("skip"))
    if skipped is not None:
        image = Image.objects.filter(testset=testset, pk=skipped).select_related("testset").first()
        if image is not None:
            voting.do_skip(request.user, image)
    state = voting.labelling_state(
        request.user, testset, image_id=_int_or_none(request.GET.get("image")),
        after=skipped if skipped is not None else _int_or_none(request.GET.get("after")),
    )
    if _wants_json(request):
        response = _state_json(testset, state)
    else:
        keys = voting.answer_keys(testset)
        response = render(request, "annotator/label.html", {
            "testset": testset,
            "state": state,
            "progress_text": _progress_text(testset, state),
            "shown": voting.shown_token(state.current) if state.current else "",
            "keys": [(key, answer) for key, answer in keys.items() if answer in testset.labels],
            "extra_keys": [(key, answer) for key, answer in keys.items() if answer not in testset.labels],
            "key_hint": ", ".join(f"{key} {answer}" for key, answer in keys.items()),
        })
    patch_vary_headers(response, ["Accept"])  # one URL, an HTML and a JSON representation
    return response


def _feedback(image, label: str) -> str | None:
    """After a vote on a control image of a test set that gives feedback: the expected answer."""
    if not (image.is_control and image.testset.control_feedback):
        return None
    if label == image.control_label:
        return f"Right: the expected answer was {image.control_label}."
    return f"The expected answer was {image.control_label}."


@login_required
@require_POST
def vote(request, testset):
    # The image and its test set in one query; the test set alone only when there is no image.
    image = (Image.objects.select_related("testset")
             .filter(testset__name=testset, pk=_int_or_none(request.POST.get("image"))).first())
    testset = image.testset if image is not None else get_object_or_404(TestSet, name=testset)
    try:
        if image is None:
            raise InputError(f"No such image in test set {testset.name!r}.")
        time_spent = voting.check_time_spent(request.POST.get("time_spent_ms"))
        if time_spent is None:
            time_spent = voting.time_since_shown(request.POST.get("shown"), image.pk)
        result = voting.do_cast_vote(request.user, image, request.POST.get("label"), time_spent_ms=time_spent)
    except InputError as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=400)
        messages.error(request, str(exc))
        return redirect("annotator:label", testset=testset.name)
    feedback = _feedback(image, result.vote.label)
    if _wants_json(request):
        saved = {"image": image.pk, "label": result.vote.label, "action": result.action}
        extra = {"feedback": feedback} if feedback else {}
        try:
            state = voting.labelling_state(request.user, testset, after=image.pk)
        except DatabaseError:
            # The vote is stored (its transaction committed); only the next image failed.
            return JsonResponse({"vote": saved, **extra, "current": None, "next_error": (
                "The next image could not be loaded (the database did not answer); reload the page.")})
        return _state_json(testset, state, vote=saved, **extra)
    messages.success(request, f"Saved: {result.vote.label}." + (f" {feedback}" if feedback else ""))
    return redirect(reverse("annotator:label", args=[testset.name]) + f"?after={image.pk}")


@login_required
@require_POST
def undo(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    undone = voting.do_undo_last_vote(request.user, testset)
    if _wants_json(request):
        state = voting.labelling_state(request.user, testset, image_id=undone.image_id if undone else None)
        return _state_json(testset, state, undone=(
            {"image": undone.image_id, "label": undone.label} if undone else None
        ))
    if undone is None:
        messages.info(request, "Nothing to undo.")
        return redirect("annotator:label", testset=testset.name)
    messages.info(request, f"Undone: your vote {undone.label}.")
    return redirect(reverse("annotator:label", args=[testset.name]) + f"?image={undone.image_id}")


@login_required
@require_GET
def image_file(request, testset, pk):
    """An image of the test set named in the URL; an image of another test set is a 404."""
    image = get_object_or_404(Image, pk=pk, testset__name=testset)
    suffix = PurePosixPath(image.file.name).suffix.lower()
    content_type = image_import.CONTENT_TYPES.get(suffix, "application/octet-stream")
    response = FileResponse(image.file.open("rb"), content_type=content_type)
    # Private: the browser may keep it (preloading relies on that), shared caches may not.
    response["Cache-Control"] = "private, max-age=86400"
    return response


# --- staff ----------------------------------------------------------------------------


@staff_required
def staff_dashboard(request):
    return render(request, "annotator/dashboard.html", {
        "stats": dashboard.testset_stats(),
        "export_form": ExportForm(),
    })


def _refused_upload(request) -> str | None:
    """Why an upload was stopped as it arrived (over UPLOAD_MAX_BYTES, annotator/uploads.py)."""
    if request.method != "POST":
        return None
    request.FILES  # noqa: B018 (reading the body is what stops an upload that is too large)
    return getattr(request, "upload_refused", None)


@staff_required
def staff_import(request):
    images_form, votes_form, report, status = ImportImagesForm(), ImportVotesForm(), None, 200
    controls_form = ImportControlsForm()
    refused = _refused_upload(request)
    if refused:
        messages.error(request, refused)
        status = 413
    elif request.method == "POST" and "zip_file" in request.FILES:
        images_form = ImportImagesForm(request.POST, request.FILES)
        if images_form.is_valid():
            data = images_form.cleaned_data
            scheme, overlap = images_form.scheme(), images_form.overlap()
            upload = data["zip_file"]
            try:
                if scheme is not None and overlap is not None and upload.size > settings.IMAGE_UPLOAD_IN_REQUEST_MAX_BYTES:
                    import_jobs.queue_image_import(upload, name=data["name"] or None, detect_faces=data["detect_faces"],
                                                 min_face=data["min_face"] or 0, scheme=scheme, overlap=overlap,
                                                 user=request.user)
                    messages.info(request, f"{upload.name} ({upload.size:,} bytes) is imported in the "
                                           "background; its report appears below when it is done.")
                    return redirect("annotator:import")
                if scheme is not None and overlap is not None:
                    report = image_import.import_testset(
                        upload, name=data["name"] or None,
                        detect_faces=data["detect_faces"], min_face=data["min_face"] or 0,
                        scheme=scheme, overlap=overlap,
                    )
            except InputError as exc:
                _add_errors(images_form, "zip_file", exc)
            else:
                if report is not None:
                    messages.success(request, report.summary())
    elif request.method == "POST" and "controls-file" in request.FILES:
        controls_form = ImportControlsForm(request.POST, request.FILES)
        if controls_form.is_valid():
            data = controls_form.cleaned_data
            try:
                testset = resolve_testset(data["testset"])
                if data["file"].size > controls.MAX_FILE_BYTES:
                    raise InputError(f"{data['file'].name} is over {controls.MAX_FILE_BYTES:,} bytes: a control "
                                     "file lists a few images; nothing was marked.")
                done = controls.import_controls(data["file"].read(), testset, data["file"].name or "the control file")
            except InputError as exc:
                _add_errors(controls_form, "file", exc)
            else:
                messages.success(request, done.summary())
                return redirect("annotator:testset", testset=testset.name)
    elif request.method == "POST" and "csv_file" in request.FILES:
        votes_form = ImportVotesForm(request.POST, request.FILES)
        if votes_form.is_valid():
            data = votes_form.cleaned_data
            upload = data["csv_file"]
            try:
                if upload.size > settings.VOTE_UPLOAD_IN_REQUEST_MAX_BYTES:
                    import_jobs.queue_vote_import(upload, testset=data["testset"], overwrite=data["overwrite"],
                                                user=request.user)
                    messages.info(request, f"{upload.name} ({upload.size:,} bytes) is imported in the "
                                           "background; its report appears below when it is done.")
                    return redirect("annotator:import")
                result = vote_import.import_votes(upload, testset=data["testset"], overwrite=data["overwrite"])
            except InputError as exc:
                _add_errors(votes_form, "csv_file", exc)
            else:
                messages.success(request, result.summary())
                for line in result.problems(limit=errors.MAX_LISTED_PROBLEMS):
                    messages.warning(request, line)
                return redirect("annotator:dashboard")
    elif request.method == "POST":
        messages.error(request, "Choose a file to upload.")
    vote_jobs = [jobs.current(job) for job in Job.objects.filter(kind=import_jobs.VOTE_IMPORT_JOB)
                 .select_related("testset")[:RECENT_VOTE_IMPORTS]]
    image_jobs = [jobs.current(job) for job in Job.objects.filter(kind=import_jobs.IMAGE_IMPORT_JOB)
                  .select_related("testset")[:RECENT_VOTE_IMPORTS]]
    return render(request, "annotator/import.html", {
        "images_form": images_form, "votes_form": votes_form, "report": report, "controls_form": controls_form,
        "vote_jobs": vote_jobs, "image_jobs": image_jobs,
        "refresh": any(job.active for job in [*vote_jobs, *image_jobs]),
        "inline_limit": settings.VOTE_UPLOAD_IN_REQUEST_MAX_BYTES,
        "image_inline_limit": settings.IMAGE_UPLOAD_IN_REQUEST_MAX_BYTES,
    }, status=status)


@staff_required
def staff_testset(request, testset):
    """A test set's design and progress; staff change how its images are served and mark
    single control images here."""
    testset = get_object_or_404(TestSet, name=testset)
    design_form = DesignForm(initial={
        "votes_per_image": testset.votes_per_image, "max_votes_per_image": testset.max_votes_per_image,
        "adaptive_stop": testset.adaptive_stop, "control_rate": testset.control_rate,
        "control_feedback": testset.control_feedback})
    control_form, status = ControlImageForm(), 200
    if request.method == "POST" and "control_rate" in request.POST:
        design_form = DesignForm(request.POST)
        overlap = design_form.overlap() if design_form.is_valid() else None
        if overlap is not None:
            do_set_overlap(testset, overlap)
            messages.success(request, "Saved: " + describe_design(testset).replace("\n", " "))
            return redirect("annotator:testset", testset=testset.name)
        status = 400
    elif request.method == "POST":
        control_form = ControlImageForm(request.POST)
        if control_form.is_valid():
            image = testset.images.filter(key=control_form.cleaned_data["image"]).first()
            try:
                if image is None:
                    raise InputError(f"Test set {testset.name!r} has no image {control_form.cleaned_data['image']!r}.")
                controls.do_set_control(image, control_form.cleaned_data["label"])
            except InputError as exc:
                control_form.add_error(None, str(exc))
            else:
                what = f"a control image ({image.control_label})" if image.control_label else "a regular image"
                messages.success(request, f"{image.key} is {what}.")
                return redirect("annotator:testset", testset=testset.name)
        status = 400
    return render(request, "annotator/testset.html", {
        "testset": testset, "design": describe_design(testset).splitlines(),
        "pool": dashboard.pool_progress(testset) if testset.pooled else None,
        "control_images": testset.images.exclude(control_label="").order_by("key")[:200],
        "design_form": design_form, "control_form": control_form,
    }, status=status)


@staff_required
@require_GET
def staff_export(request, testset, kind):
    if kind not in ("csv", "zip", "votes"):
        raise Http404("Export kinds are csv, zip and votes.")
    testset = get_object_or_404(TestSet, name=testset)
    form = ExportForm(request.GET)
    if not form.is_valid():
        return text_response("Bad export options: " + form_errors_text(form))
    balanced, seed = form.cleaned_data["balanced"], form.cleaned_data["seed"] or 0
    stem = f"{testset.name}-balanced-seed{seed}" if balanced else testset.name
    if kind == "votes":
        return _download(exporting.iter_votes_csv(testset), f"{testset.name}-votes.csv", "text/csv")
    # All of the rows are needed to balance them; otherwise they are read as they are sent.
    rows, balance = exporting.iter_testset_rows(testset), None
    if balanced:
        try:
            rows, balance = exporting.balance_rows(exporting.testset_rows(testset), seed)
        except InputError as exc:
            messages.error(request, str(exc))
            return redirect("annotator:dashboard")
    if kind == "csv":
        return _download(exporting.iter_testset_csv(rows, testset), f"{stem}.csv", "text/csv")
    return _download(exporting.iter_testset_zip(testset, rows, balance), f"{stem}.zip", "application/zip")


def _add_errors(form, field, exc):
    # One error per line, so a list of bad rows stays readable in the form.
    for line in str(exc).splitlines():
        form.add_error(field, line.strip())


def _download(pieces, filename: str, content_type: str) -> StreamingHttpResponse:
    """A file download sent as it is written (csv text is sent as UTF-8)."""
    data = (piece.encode() if isinstance(piece, str) else piece for piece in pieces)
    charset = "; charset=utf-8" if content_type.startswith("text/") else ""
    response = StreamingHttpResponse(data, content_type=content_type + charset)
    response["Content-Disposition"] = f'attachment; filename="{PurePosixPath(filename).name}"'
    return response


# --- errors ----------------------------------------------------------------------------


def bad_request(request, exception):
    """The 400 answer (handler400): a request over one of Django's upload limits says which."""
    limits = {
        RequestDataTooBig: ("its form fields are larger than", "DATA_UPLOAD_MAX_MEMORY_SIZE",
                            f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes"),
        TooManyFieldsSent: ("it has more form fields than", "DATA_UPLOAD_MAX_NUMBER_FIELDS",
                            f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,}"),
        TooManyFilesSent: ("it has more files than", "DATA_UPLOAD_MAX_NUMBER_FILES",
                           f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES:,}"),
    }
    for kind, (what, setting, limit) in limits.items():
        if isinstance(exception, kind):
            return text_response(f"The request was refused: {what} this server accepts ({setting}, "
                                 f"{limit}); nothing was stored.")
    return text_response("Bad request: the server cannot read it; nothing was stored.")
