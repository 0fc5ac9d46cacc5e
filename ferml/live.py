"""The live demo (thesis 7.5): faces in a video stream, followed and labelled as they move.

Every ``prediction_every``-th frame is analysed: OpenCV finds the faces, a tracker pairs
each with the nearest face of the previous analysed frame (box centres at most
``tracking_sense`` pixels apart) and the model's probabilities for the face are added to
its track. Every ``label_every`` frames each track shows the label with the highest mean
probability since its last label, or "uncertain" when that mean is below
``prediction_sense``. A face the tracker loses starts over as a new track, with no label
until it has been seen again, as in the thesis.

``label_video`` is the command line's live demo; the web page streams ``live_frames``.
Reading and writing video is ``ferml.video``'s job.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import numpy as np

from .faces import find_faces
from .labels import check_label_set
from .video import VideoSource, open_writer, to_gray, video_codec

UNCERTAIN = "uncertain"
FULL = "full"
# Thesis 7.5.2: 30-40 % prediction sense and 3 / 9 frames felt right and kept up in real time.
DEFAULT_PREDICTION_SENSE = 0.35
DEFAULT_PREDICTION_EVERY = 3
DEFAULT_LABEL_EVERY = 9
DEFAULT_TRACKING_SENSE = 60.0
# BGR colours of the boxes: red for negative labels, green for positive ones.
COLOURS = {"negative": (60, 60, 230), "positive": (80, 200, 80), "neutral": (200, 200, 200),
           "happy": (80, 200, 80), "surprise": (80, 200, 200), UNCERTAIN: (0, 200, 255)}
OTHER_COLOUR = (60, 60, 230)
UNLABELLED_COLOUR = (255, 255, 255)


@dataclass(frozen=True)
class LiveSettings:
    spectrum: str = "bin3"  # a label set to bin the model's classes into, or "full"
    prediction_sense: float = DEFAULT_PREDICTION_SENSE
    tracking_sense: float = DEFAULT_TRACKING_SENSE
    prediction_every: int = DEFAULT_PREDICTION_EVERY
    label_every: int = DEFAULT_LABEL_EVERY

    def __post_init__(self):
        if self.spectrum != FULL:
            check_label_set(self.spectrum)
        if not 0 <= self.prediction_sense <= 1:
            raise ValueError(f"prediction sense must be between 0 and 1, got {self.prediction_sense:g}")
        if not (self.tracking_sense > 0 and math.isfinite(self.tracking_sense)):
            raise ValueError(f"tracking sense must be a positive number of pixels, got {self.tracking_sense:g}")
        for name in ("prediction_every", "label_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be a whole number of frames of at least 1, got {value}")


@dataclass
class Track:
    """One face followed from analysed frame to analysed frame."""

    id: int
    box: tuple[int, int, int, int]
    prob_sum: np.ndarray | None = None
    n_predictions: int = 0
    label: str | None = None
    probability: float | None = None

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


class CentreTracker:
    """Pairs face boxes with the tracks of the previous frame by box-centre distance."""

    def __init__(self, tracking_sense: float):
        self.tracking_sense = tracking_sense
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes) -> list[Track]:
        """The tracks of this frame, one per box, in the order of ``boxes``."""
        boxes = [tuple(int(v) for v in b) for b in boxes]
        centres = [(x + w / 2, y + h / 2) for x, y, w, h in boxes]
        # Closest pairs first, each track and box used once: a face never steals a nearer one's track.
        pairs = sorted(
            (math.dist(track.centre, centre), t, b)
            for t, track in enumerate(self.tracks) for b, centre in enumerate(centres)
        )
        track_of_box: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for distance, t, b in pairs:
            if distance > self.tracking_sense:
                break
            if t in used_tracks or b in track_of_box:
                continue
            used_tracks.add(t)
            track_of_box[b] = self.tracks[t]
        tracks = []
        for b, box in enumerate(boxes):
            track = track_of_box.get(b)
            if track is None:
                track = Track(self._next_id, box)
                self._next_id += 1
            track.box = box
            tracks.append(track)
        self.tracks = tracks  # unpaired tracks are lost
        return tracks

    @property
    def n_started(self) -> int:
        return self._next_id - 1


class LiveAnalyzer:
    """Feeds frames one by one; ``process`` returns the tracks to draw on each."""

    def __init__(self, predictor, settings: LiveSettings | None = None,
                 detect: Callable[[np.ndarray], list] = find_faces):
        self.predictor = predictor
        self.settings = settings or LiveSettings()
        self.detect = detect
        spectrum = self.settings.spectrum
        self.label_set = None if spectrum == FULL else spectrum
        self.classes = list(predictor.classes) if spectrum == FULL else check_label_set(spectrum)
        self.tracker = CentreTracker(self.settings.tracking_sense)
        self.frame_index = 0
        self.n_predictions = 0
        self.labelled: list[Track] = []  # the tracks given a new label at the last frame

    def process(self, frame: np.ndarray) -> list[Track]:
        index = self.frame_index
        self.frame_index += 1
        if index % self.settings.prediction_every == 0:
            gray = to_gray(frame)
            tracks = self.tracker.update(self.detect(gray))
            if tracks:
                crops = [gray[y:y + h, x:x + w] for x, y, w, h in (t.box for t in tracks)]
                probs = self.predictor.predict_proba(crops, self.label_set)
                for track, p in zip(tracks, probs):
                    track.prob_sum = p if track.prob_sum is None else track.prob_sum + p
                    track.n_predictions += 1
                self.n_predictions += len(tracks)
        self.labelled = []
        if (index + 1) % self.settings.label_every == 0:
            self.labelled = [t for t in self.tracker.tracks if self._present_label(t)]
        return self.tracker.tracks

    def _present_label(self, track: Track) -> bool:
        if not track.n_predictions:
            return False  # nothing seen since the last label: keep showing it
        mean = track.prob_sum / track.n_predictions
        best = int(mean.argmax())
        track.probability = float(mean[best])
        track.label = self.classes[best] if track.probability >= self.settings.prediction_sense else UNCERTAIN
        track.prob_sum, track.n_predictions = None, 0
        return True


def draw_tracks(frame: np.ndarray, tracks: list[Track]) -> np.ndarray:
    """A BGR copy of ``frame`` with each face's box, number and label."""
    import cv2

    out = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for track in tracks:
        x, y, w, h = track.box
        if track.label is None:
            colour, text = UNLABELLED_COLOUR, f"#{track.id}"
        else:
            colour = COLOURS.get(track.label, OTHER_COLOUR)
            text = f"#{track.id} {track.label} {100 * track.probability:.0f}%"
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness)
        scale = max(0.4, w / 250)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - th - base - 4)
        cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    thickness, cv2.LINE_AA)
    return out


def live_frames(analyzer: LiveAnalyzer, video: VideoSource, max_frames: int | None = None,
                realtime: bool = False, loop: bool = False) -> Iterator[np.ndarray]:
    """Each frame of ``video``, analysed by ``analyzer`` and drawn on.

    ``realtime`` paces a video file at its own frame rate, as a camera would deliver it;
    ``loop`` plays a video file again and again.
    """
    pace = realtime and video.is_file
    start = None
    for n, frame in enumerate(video.frames(max_frames, loop)):
        shown = draw_tracks(frame, analyzer.process(frame))
        if start is None:
            # The schedule counts from the first frame shown: a slow first frame (the model
            # warming up) is not made up for by a burst of frames after it.
            start = time.monotonic()
        yield shown
        if pace:
            delay = start + (n + 1) / video.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def label_video(source: str, model: str = "bkvgg12", settings: LiveSettings | None = None,
                out=None, max_frames: int | None = None, device: str = "auto",
                log: Callable[[str], None] = partial(print, flush=True)) -> None:
    """The live demo on the command line: label the faces of ``source`` (a file, camera
    number or stream URL) with ``model``, log each label as it is shown and a summary
    with the speed, and write the annotated video to ``out`` (.avi or .mp4) if given."""
    from .inference import Predictor  # PyTorch loads here, not when the web app imports this module

    if out:
        video_codec(out)  # a wrong file type is refused before any frame is read
    predictor = Predictor.from_name(model, device=device)
    video = VideoSource(source)
    writer, shown, n_frames, analyzer = None, Counter(), 0, LiveAnalyzer(predictor, settings)
    started = time.perf_counter()
    try:
        for frame in live_frames(analyzer, video, max_frames):
            n_frames += 1
            if out:
                writer = writer or open_writer(out, video.fps, (frame.shape[1], frame.shape[0]))
                writer.write(frame)
            for t in analyzer.labelled:
                shown[t.label] += 1
                log(f"frame {n_frames}: face #{t.id} {t.label} ({100 * t.probability:.0f} %)")
    finally:
        if writer is not None:
            writer.release()
    seconds = time.perf_counter() - started
    labels = ", ".join(f"{k} {v}" for k, v in shown.most_common()) or "none"
    log(f"{n_frames} frames, {analyzer.n_predictions} face predictions, {analyzer.tracker.n_started} "
        f"faces tracked; labels shown: {labels}")
    log(f"{seconds:.1f} s, {n_frames / seconds:.1f} frames/s (detection, tracking, model and drawing)")
    if out:
        log(f"annotated video: {out}")
