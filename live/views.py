"""The live demo page and its Motion-JPEG stream: thin views over ``ferml.live``."""
from django.conf import settings
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.access import staff_required
from core.errors import form_errors_text, text_response, without_server_paths
from ferml import live
from ferml.inference import Predictor
from ferml.modelfiles import available_models
from ferml.video import LiveSourceError

from .forms import LiveForm, stored_videos
from .mjpeg import CONTENT_TYPE, mjpeg_stream
from .relay import open_source
from .streams import SLOTS, LimitedStream


def _busy_message() -> str:
    if settings.LIVE_MAX_STREAMS <= 0:
        return "The live demo plays no stream on this server (LIVE_MAX_STREAMS is 0)."
    return (f"The live demo already plays {settings.LIVE_MAX_STREAMS} stream(s), the most this server "
            "allows at once (LIVE_MAX_STREAMS); stop one or try again in a minute.")


def _starting_with(first: bytes, parts):
    """``first``, then ``parts``; closing it closes ``parts`` (and so the video)."""
    yield first
    yield from parts


def _close(video) -> None:
    if video is not None:
        video.close()


@require_GET
@staff_required
def index(request):
    model_names = available_models()
    bound = "source" in request.GET
    form = LiveForm(request.GET if bound else LiveForm.default_data(model_names), model_names=model_names)
    playing = bound and form.is_valid()
    busy = playing and SLOTS.in_use(settings.LIVE_MAX_STREAMS) >= settings.LIVE_MAX_STREAMS
    context = {"form": form, "videos": stored_videos(), "bound": bound,
               "busy": _busy_message() if busy else None,
               "max_minutes": settings.LIVE_MAX_STREAM_SECONDS / 60,
               "stream_query": request.GET.urlencode() if playing and not busy else None}
    status = 400 if bound and form.errors else 503 if busy else 200
    return render(request, "live/index.html", context, status=status)


@require_GET
@staff_required
def stream(request):
    form = LiveForm(request.GET, model_names=available_models())
    if not form.is_valid():
        return text_response(form_errors_text(form), 400)
    if not SLOTS.take(settings.LIVE_MAX_STREAMS):
        response = text_response(_busy_message(), 503)
        response["Retry-After"] = "60"
        return response
    video = None
    try:
        video = open_source(form.cleaned_data["source"])
        predictor = Predictor.from_name(form.cleaned_data["model"])
        analyzer = live.LiveAnalyzer(predictor, form.live_settings())
        frames = live.live_frames(analyzer, video, realtime=True, loop=form.cleaned_data["loop"])
        parts = mjpeg_stream(frames)
        first = next(parts)  # a source that opens but yields no frame is refused here, not mid-stream
    except LiveSourceError as exc:
        _close(video)
        SLOTS.give_back()
        return text_response(without_server_paths(str(exc)), 400)
    except BaseException:
        _close(video)
        SLOTS.give_back()
        raise
    limited = LimitedStream(_starting_with(first, parts), settings.LIVE_MAX_STREAM_SECONDS, SLOTS.give_back)
    response = StreamingHttpResponse(limited, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
