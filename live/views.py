"""The live demo page and its Motion-JPEG stream: thin views over ``ferml.live``."""
from itertools import chain

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotator.access import staff_required
from ferml import live
from ferml.inference import Predictor, available_models
from ferml.video import LiveSourceError, VideoSource

from .forms import LiveForm, stored_videos
from .mjpeg import CONTENT_TYPE, mjpeg_stream


@require_GET
@staff_required
def index(request):
    model_names = available_models()
    bound = "source" in request.GET
    form = LiveForm(request.GET if bound else LiveForm.default_data(model_names), model_names=model_names)
    context = {"form": form, "videos": stored_videos(), "bound": bound,
               "stream_query": request.GET.urlencode() if bound and form.is_valid() else None}
    return render(request, "live/index.html", context, status=400 if bound and form.errors else 200)


@require_GET
@staff_required
def stream(request):
    form = LiveForm(request.GET, model_names=available_models())
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
    try:
        video = VideoSource(form.cleaned_data["source"])
    except LiveSourceError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    predictor = Predictor.from_name(form.cleaned_data["model"])
    analyzer = live.LiveAnalyzer(predictor, form.live_settings())
    frames = live.live_frames(analyzer, video, realtime=True, loop=form.cleaned_data["loop"])
    parts = mjpeg_stream(frames)
    try:
        first = next(parts)  # a source that opens but yields no frame is refused here, not mid-stream
    except LiveSourceError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    response = StreamingHttpResponse(chain([first], parts), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
