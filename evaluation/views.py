"""Staff pages of the human-vs-model report: thin views over ``evaluation.services``.

The page, the JSON download and the HTML download read the same query string
(holdout, reference, min_images, labels, models, seed) and call
``services.run_benchmark``, so they agree.
"""
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from annotator.access import staff_required
from annotator.errors import text_response, without_server_paths
from annotator.models import TestSet
from ferml.inference import available_models

from . import report, services
from .forms import BenchmarkForm


@require_GET
@staff_required
def index(request):
    rows = [(t, services.agreement_summary(t)) for t in TestSet.objects.order_by("name")]
    return render(request, "evaluation/index.html", {"rows": rows})


@require_GET
@staff_required
def report_page(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    form, result, error = _benchmark(request, testset)
    context = {"testset": testset, "form": form, "error": error, "result": result,
               "query": request.GET.urlencode(), "no_model_message": None}
    if not form.fields["models"].choices:
        context["no_model_message"] = services.no_model_message()
    if result is not None:
        context.update(report.page_context(result))
    return render(request, "evaluation/report.html", context, status=400 if form.errors else 200)


@require_GET
@staff_required
def report_json(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    form, result, error = _benchmark(request, testset)
    if result is None:
        return JsonResponse({"error": error or form.errors.get_json_data()}, status=400)
    response = JsonResponse(result, json_dumps_params={"indent": 2, "allow_nan": False})
    response["Content-Disposition"] = f'attachment; filename="{testset.name}-benchmark.json"'
    return response


@require_GET
@staff_required
def report_html(request, testset):
    testset = get_object_or_404(TestSet, name=testset)
    form, result, error = _benchmark(request, testset)
    if result is None:
        return text_response(error or form.errors.as_text())
    response = HttpResponse(report.render_report_html(result))
    response["Content-Disposition"] = f'attachment; filename="{testset.name}-benchmark.html"'
    return response


def _benchmark(request, testset):
    """(form, result or None, error sentence or None) for the choices in the query string."""
    model_names = available_models()
    form = BenchmarkForm(
        request.GET or BenchmarkForm.default_data(model_names),
        annotators=services.annotator_names(testset),
        model_names=model_names,
    )
    if not form.is_valid():
        return form, None, None
    choice = form.cleaned_data
    try:
        result = services.run_benchmark(
            testset, choice["models"], holdout=choice["holdout"], labels=choice["labels"],
            seed=choice["seed"] or 0, reference=choice["reference"],
            min_images=choice["min_images"],
        )
    except services.BenchmarkError as err:
        return form, None, without_server_paths(str(err))
    return form, result, None
