"""The live demo's settings (thesis 7.5.2), read from the query string of page and stream."""
from pathlib import Path

from django import forms
from django.conf import settings

from core.errors import shorten
from ferml import live
from ferml.labels import BIN_SETS, LABEL_SETS
from ferml.video import STREAM_SCHEMES, VIDEO_SUFFIXES

from .sources import CheckedStream, SourceRefused, check_stream_url


def video_dir() -> Path:
    return Path(settings.LIVE_VIDEO_DIR)


def stored_videos() -> list[str]:
    """Video files that staff may play, by name: only those in LIVE_VIDEO_DIR."""
    folder = video_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


class LiveForm(forms.Form):
    source = forms.CharField(
        label="Camera or video", max_length=500,
        help_text="A video stored on the server (listed below), a camera number such as 0, "
                  "or a network camera's URL (http, https, rtsp) on a host the server "
                  "lists in LIVE_STREAM_HOSTS.",
    )
    model = forms.ChoiceField(label="Model")
    spectrum = forms.ChoiceField(
        label="Emotion spectrum",
        choices=[(live.FULL, "full: the model's own classes")]
        + [(name, f"{name}: {' / '.join(LABEL_SETS[name])}") for name in BIN_SETS],
    )
    prediction_sense = forms.FloatField(
        label="Prediction sense", min_value=0, max_value=1,
        help_text="Below this mean probability the label is 'uncertain'.",
    )
    tracking_sense = forms.FloatField(
        label="Tracking sense (pixels)", min_value=1, max_value=10000,
        help_text="How far a face's centre may move between analysed frames and stay the same face.",
    )
    prediction_every = forms.IntegerField(label="Prediction frequency (frames)", min_value=1, max_value=1000)
    label_every = forms.IntegerField(label="Label frequency (frames)", min_value=1, max_value=10000)
    loop = forms.BooleanField(label="Play a stored video again and again", required=False)

    def __init__(self, *args, model_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(name, name) for name in model_names]

    @staticmethod
    def default_data(model_names: list[str]) -> dict:
        videos = stored_videos()
        return {
            "source": videos[0] if videos else "", "model": model_names[0] if model_names else "",
            "spectrum": "bin3", "prediction_sense": live.DEFAULT_PREDICTION_SENSE,
            "tracking_sense": live.DEFAULT_TRACKING_SENSE, "prediction_every": live.DEFAULT_PREDICTION_EVERY,
            "label_every": live.DEFAULT_LABEL_EVERY, "loop": True,
        }

    def clean_source(self) -> str | CheckedStream:
        """A camera number, a stream URL on a listed host (with the addresses it was checked
        at), or the path of a stored video (never any other file)."""
        source = self.cleaned_data["source"].strip()
        if source.isdigit():
            return source
        if source.lower().startswith(STREAM_SCHEMES):
            try:
                return check_stream_url(source, settings.LIVE_STREAM_HOSTS)
            except SourceRefused as exc:
                raise forms.ValidationError(f"“{shorten(source)}” is refused: {exc}.") from None
        if source in stored_videos():
            return str(video_dir() / source)
        raise forms.ValidationError(
            f"“{shorten(source)}” is not a stored video, a camera number or a stream URL. "
            f"Stored videos are the {', '.join(sorted(VIDEO_SUFFIXES))} files in the server's "
            "video folder (LIVE_VIDEO_DIR)."
        )

    def live_settings(self) -> live.LiveSettings:
        d = self.cleaned_data
        return live.LiveSettings(d["spectrum"], d["prediction_sense"], d["tracking_sense"],
                                 d["prediction_every"], d["label_every"])
