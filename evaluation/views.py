"""Staff pages of the human-vs-model report: thin views over ``evaluation.report_jobs``.

The page, the JSON download and the HTML download read the same query string
(holdout, reference, min_images, labels, models, seed) and show the same stored report
(``report_jobs.request_report``): computed in the background when it is due, its progress
shown until it is done.
"""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotator.forms import ExclusionForm
from annotator.models import TestSet
from annotator.testsets import do_exclude, do_include
from core import jobs
from core.access import staff_required
from core.errors import InputError, form_errors_text, text_response, without_server_paths
from core.models import Job
from ferml.modelfiles import available_models

from . import plans, report, report_jobs, services, uploads
from .forms import BenchmarkForm, ModelUploadForm, PlanForm, QualityForm
from .models import StoredPrediction


@require_GET
@staff_required
def index(request):
    rows = [(t, services.agreement_summary(t)) for t in TestSet.objects.order_by("name")]
    return render(request, "evaluation/index.html", {"rows": rows, "stored": StoredPrediction.objects.count()})


@staff_required
@require_http_methods(["POST"])
def clear_predictions(request):
    """Forget the stored predictions: every report computes its models' anew."""
    messages.success(request, f"{services.clear_prediction_store():,} stored prediction(s) removed; reports "
                              "compute them again when they need them.")
    return redirect("evaluation:index")


@require_http_methods(["GET", "POST"])
@staff_required
def report_page(request, testset):
    """GET shows the report for the choices in the query string; POST ("Compute again")
    computes it anew from the current votes."""
    testset = get_object_or_404(TestSet, name=testset)
    if request.method == "POST" and "file" in request.FILES:
        return _upload_model(request, testset)
    again = request.method == "POST"
    form, job = _report_job(request, testset, again=again)
    query = _choices(request).urlencode()
    if again and job is not None:
        return redirect(f"{request.path}?{query}{'&' if query else ''}job={job.pk}")
    context = {"testset": testset, "form": form, "error": None, "result": None, "job": job,
               "query": query, "no_model_message": None, "outdated": False, "upload_form": ModelUploadForm()}
    if not form.fields["models"].choices:
        context["no_model_message"] = services.no_model_message()
    if job is not None and job.status == Job.Status.FAILED:
        context["error"] = without_server_paths(job.error)
    elif job is not None and job.status == Job.Status.DONE:
        context["result"] = job.result["report"]
        context["outdated"] = report_jobs.is_outdated(job)
        context.update(report.page_context(context["result"]))
    return render(request, "evaluation/report.html", context, status=400 if form.errors else 200)


def _upload_model(request, testset):
    """Keep an uploaded model and show the report with it among the choices."""
    upload_form = ModelUploadForm(request.POST, request.FILES)
    choices = _choices(request)
    if upload_form.is_valid():
        try:
            entry = uploads.save_upload(upload_form.cleaned_data["file"], upload_form.cleaned_data["name"],
                                        upload_form.cleaned_data["metadata"])
        except InputError as exc:
            messages.error(request, str(exc))
        else:
            choices.appendlist("uploads", entry)
            messages.success(request, f"{upload_form.cleaned_data['name']} is a model of this report.")
    else:
        messages.error(request, "Choose a file (.onnx or .csv) and give it a name.")
    if not choices.get("holdout"):  # a first visit: the defaults, with the upload
        defaults = BenchmarkForm.default_data(available_models(), services.scoring_choices(testset)[0])
        for key, value in defaults.items():
            if key not in choices:
                choices.setlist(key, value if isinstance(value, list) else [value])
    return redirect(f"{request.path}?{choices.urlencode()}")


@require_GET
@staff_required
def report_json(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    form, job = _report_job(request, testset)
    if job is None:
        return JsonResponse({"error": form.errors.get_json_data()}, status=400)
    if job.active:
        return JsonResponse(_progress(job), status=202)
    if job.status == Job.Status.FAILED:
        return JsonResponse({"error": without_server_paths(job.error)}, status=400)
    response = JsonResponse(job.result["report"], json_dumps_params={"indent": 2, "allow_nan": False})
    response["Content-Disposition"] = f'attachment; filename="{testset.name}-benchmark.json"'
    return response


@require_GET
@staff_required
def report_html(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    form, job = _report_job(request, testset)
    if job is None:
        return text_response(form_errors_text(form))
    if job.active:
        return text_response(_progress_sentence(job), status=202)
    if job.status == Job.Status.FAILED:
        return text_response(without_server_paths(job.error))
    response = HttpResponse(report.render_report_html(job.result["report"]))
    response["Content-Disposition"] = f'attachment; filename="{testset.name}-benchmark.html"'
    return response


def _choices(request):
    """The query string without ``job`` (which only pins the page to one computation)."""
    choices = request.GET.copy()
    choices.pop("job", None)
    return choices


def _report_job(request, testset, *, again: bool = False):
    """(form, the report's job or None) for the choices in the query string.

    A report just started is waited for up to REPORT_WAIT_SECONDS, so a small study's page
    shows its result at once.
    """
    model_names = available_models()
    choices = services.scoring_choices(testset)
    form = BenchmarkForm(
        _choices(request) or BenchmarkForm.default_data(model_names, choices[0]),
        annotators=services.annotator_names(testset),
        model_names=model_names,
        label_choices=[(name, services.scoring_labels(testset, name).labels) for name in choices],
    )
    if not form.is_valid():
        return form, None
    options = report_jobs.report_options(form.cleaned_data)
    pinned = None if again else report_jobs.job_of(testset, request.GET.get("job"))
    if pinned is not None and pinned.key == report_jobs.report_key(options):
        return form, pinned
    job = report_jobs.request_report(testset, options, request.user, again=again)
    if job.active:
        job = jobs.wait(job, settings.REPORT_WAIT_SECONDS)
    return form, job


def _progress(job: Job) -> dict:
    return {"status": job.status, "stage": job.stage, "done": job.done, "total": job.total}


def _progress_sentence(job: Job) -> str:
    where = job.stage or "waiting to start"
    if job.total:
        where += f", {job.done:,} of {job.total:,}"
    return (f"The report is being computed ({where}); download it from the report page when it "
            "is done.")


@require_http_methods(["GET", "POST"])
@staff_required
def quality_page(request, testset):
    """Each annotator's quality figures and flags; POST excludes an annotator from the test
    set's statistics (with a reason) or counts them again."""
    testset = get_object_or_404(TestSet, name=testset)
    if request.method == "POST":
        form = ExclusionForm(request.POST)
        user = get_user_model().objects.filter(username=request.POST.get("annotator", "")).first()
        try:
            if not form.is_valid() or user is None:
                raise InputError("Choose an annotator of the table.")
            if request.POST.get("action") == "include":
                do_include(testset, user, by=request.user)
                messages.success(request, f"{user.username}'s votes count again.")
            else:
                do_exclude(testset, user, form.cleaned_data["reason"], by=request.user)
                messages.success(request, f"{user.username} is excluded from {testset.name}'s statistics.")
        except InputError as exc:
            messages.error(request, str(exc))
        return redirect(request.get_full_path())
    form = QualityForm(request.GET or None)
    thresholds = form.thresholds() if form.is_valid() else QualityForm.default_thresholds()
    result = services.annotator_quality(testset, thresholds)
    header, rows = report.quality_rows(result)
    annotators = [
        {**a, "cells": cells,
         "heatmap": report.confusion_shades(a["confusion_counts"], result["labels"]) if a["loo_n_compared"] else None}
        for a, cells in zip(result["annotators"], rows)
    ]
    return render(request, "evaluation/quality.html", {
        "testset": testset, "result": result, "header": header, "annotators": annotators, "form": form,
        "history": testset.exclusions.select_related("annotator", "created_by", "lifted_by")[:50],
    }, status=400 if form.errors else 200)


@require_GET
@staff_required
def plan_page(request, testset):
    """The study planner with this test set as the pilot: images needed per number of
    annotators, and power against images, computed in the background."""
    testset = get_object_or_404(TestSet, name=testset)
    model_names = available_models()
    form = PlanForm(request.GET or None, model_names=model_names)
    job = result = figure = None
    if form.is_bound and form.is_valid():
        job = plans.request_plan(testset, form.options(), request.user)
        if job.active:
            job = jobs.wait(job, settings.REPORT_WAIT_SECONDS)
        if job.status == Job.Status.DONE:
            result = job.result
            figure = report.figure_to_data_uri(report.power_figure(result))
    return render(request, "evaluation/plan.html", {
        "testset": testset, "form": form, "job": job, "result": result, "figure": figure,
        "error": without_server_paths(job.error) if job is not None and job.status == Job.Status.FAILED else None,
        "table": report.plan_table(result) if result else None,
        "sentences": report.plan_sentences(result) if result else None,
    }, status=400 if form.errors else 200)
