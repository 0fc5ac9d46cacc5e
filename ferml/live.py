"""The live demo (thesis 7.5): faces in a video stream, followed and labelled as they move.

Every ``prediction_every``-th frame is analysed: OpenCV finds the faces, a tracker pairs
each with the nearest face of the previous analysed frame (box centres at most
``tracking_sense`` pixels apart) and the model's probabilities for the face are added to
its track. Every ``label_every`` frames each track shows the label with the highest mean
probability since its last label, or "uncertain" when that mean is below
``prediction_sense``. A face the tracker loses starts over as a new track, with no label
until it has been seen again, as in the thesis.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .faces import find_faces
from .labels import check_label_set

UNCERTAIN = "uncertain"
FULL = "full"
# Thesis 7.5.2: 30-40 % prediction sense and 3 / 9 frames felt right and kept up in real time.
DEFAULT_PREDICTION_SENSE = 0.35
DEFAULT_PREDICTION_EVERY = 3
DEFAULT_LABEL_EVERY = 9
DEFAULT_TRACKING_SENSE = 60.0
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"}
STREAM_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://")
# BGR colours of the boxes: red for negative labels, green for positive ones.
COLOURS = {"negative": (60, 60, 230), "positive": (80, 200, 80), "neutral": (200, 200, 200),
           "happy": (80, 200, 80), "surprise": (80, 200, 200), UNCERTAIN: (0, 200, 255)}
OTHER_COLOUR = (60, 60, 230)
UNLABELLED_COLOUR = (255, 255, 255)


class LiveSourceError(ValueError):
    """A video source that cannot be opened or read."""


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


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


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


def parse_source(source: str) -> int | str:
    """A camera number, a stream URL or an existing video file, checked before OpenCV sees it."""
    text = str(source).strip()
    if text.isdigit():
        return int(text)
    if text.lower().startswith(STREAM_SCHEMES):
        return text
    path = Path(text)
    if not path.is_file():
        raise LiveSourceError(f"{text}: no such video file (give a file, a camera number such as 0, "
                              f"or a stream URL starting with {', '.join(STREAM_SCHEMES)})")
    return str(path)


class VideoSource:
    """Frames of a camera, stream or file; ``fps`` is the source's rate (25 when unknown)."""

    def __init__(self, source: str):
        import cv2

        self.name = str(source)
        target = parse_source(source)
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            self.capture.release()
            raise LiveSourceError(f"{self.name}: OpenCV cannot open this as a video, camera or stream")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 240 else 25.0
        self.is_file = isinstance(target, str) and not target.lower().startswith(STREAM_SCHEMES)

    def frames(self, max_frames: int | None = None, loop: bool = False) -> Iterator[np.ndarray]:
        """The frames in order; ``loop`` starts a video file again at its end, like a kiosk."""
        import cv2

        count = 0
        try:
            while max_frames is None or count < max_frames:
                ok, frame = self.capture.read()
                if not ok and loop and self.is_file and count:
                    self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, frame = self.capture.read()
                if not ok:
                    if count == 0:
                        raise LiveSourceError(f"{self.name}: no frame could be read")
                    return
                count += 1
                yield frame
        finally:
            self.capture.release()


def live_frames(analyzer: LiveAnalyzer, video: VideoSource, max_frames: int | None = None,
                realtime: bool = False, loop: bool = False) -> Iterator[np.ndarray]:
    """Each frame of ``video``, analysed by ``analyzer`` and drawn on.

    ``realtime`` paces a video file at its own frame rate, as a camera would deliver it;
    ``loop`` plays a video file again and again.
    """
    pace = realtime and video.is_file
    start = time.monotonic()
    for n, frame in enumerate(video.frames(max_frames, loop)):
        yield draw_tracks(frame, analyzer.process(frame))
        if pace:
            delay = start + (n + 1) / video.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def mjpeg_stream(frames, boundary: str = "frame", quality: int = 80) -> Iterator[bytes]:
    """The parts of a multipart/x-mixed-replace response, one JPEG per frame."""
    import cv2

    for frame in frames:
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            yield (f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg.tobytes() + b"\r\n")


def video_codec(path) -> str:
    """The FourCC OpenCV's own wheels can write for this file name."""
    codecs = {".avi": "MJPG", ".mp4": "mp4v"}
    suffix = Path(path).suffix.lower()
    if suffix not in codecs:
        raise LiveSourceError(f"{path}: write the annotated video as .avi or .mp4")
    return codecs[suffix]


def open_writer(path, fps: float, frame_size: tuple[int, int]):
    """An OpenCV video writer for .avi (Motion JPEG) or .mp4 (MPEG-4 part 2)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*video_codec(path)), fps, frame_size)
    if not writer.isOpened():
        raise LiveSourceError(f"{path}: OpenCV cannot write a video here")
    return writer


def face_tile(face: np.ndarray, side: int = 144) -> np.ndarray:
    """A tight face crop enlarged to ``side`` pixels plus a replicated border of a sixth of it,

    which makes it look like a face in a photo to OpenCV's detector (SPEC: 74 % found).
    """
    import cv2

    gray = to_gray(np.asarray(face, dtype=np.uint8))
    border = side // 6
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE)


def make_face_clip(faces: list[np.ndarray], out, seconds_per_face: float = 2.0, fps: float = 15.0,
                   size: tuple[int, int] = (480, 320), face_side: int = 144, step: int = 4) -> Path:
    """A clip in which each face image in turn drifts across a plain background.

    Real cameras are not available everywhere, so the demo and the tests play real faces
    this way; ``step`` is the drift in pixels per frame.
    """
    import cv2

    width, height = size
    writer = open_writer(out, fps, size)
    frames_per_face = max(1, round(seconds_per_face * fps))
    try:
        for face in faces:
            tile = face_tile(face, face_side)
            side = tile.shape[0]
            y = (height - side) // 2
            for i in range(frames_per_face):
                canvas = np.full((height, width), 128, np.uint8)
                x = min(width - side, 8 + i * step)
                canvas[y:y + side, x:x + side] = tile
                writer.write(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return Path(out)
