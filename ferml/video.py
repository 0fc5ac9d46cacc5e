"""Video in and out for the live demo: cameras, streams and files to read, files to write.

OpenCV is imported inside the functions, so that importing this module (the Django
apps do) does not load it.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"}
STREAM_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://")
# OpenCV reads FFmpeg's options from this variable of the process when it opens a capture:
# opening is serialised so that one source's options never reach another's.
_FFMPEG_OPTIONS_VARIABLE = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()


class LiveSourceError(ValueError):
    """A video that cannot be opened, read or written; the message names it."""


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


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

    def __init__(self, source: str, *, ffmpeg_options: dict[str, str] | None = None,
                 name: str | None = None, on_close: Callable[[], None] | None = None):
        """``source`` as ``parse_source`` reads it; with ``ffmpeg_options`` it goes to
        FFmpeg as it is (``pipe:N``, a relayed URL) with those options. ``on_close`` runs
        once the capture is released."""
        import cv2

        self.name = name or str(source)
        self._on_close = on_close
        self._closed = False
        target = parse_source(source) if ffmpeg_options is None else str(source)
        with _OPEN_LOCK:
            if ffmpeg_options is None:
                self.capture = cv2.VideoCapture(target)
            else:
                os.environ[_FFMPEG_OPTIONS_VARIABLE] = "|".join(f"{k};{v}" for k, v in ffmpeg_options.items())
                try:
                    self.capture = cv2.VideoCapture(target, cv2.CAP_FFMPEG)
                finally:
                    del os.environ[_FFMPEG_OPTIONS_VARIABLE]
        if not self.capture.isOpened():
            self.close()
            raise LiveSourceError(f"{self.name}: OpenCV cannot open this as a video, camera or stream")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 1 <= fps <= 240 else 25.0
        self.is_file = ffmpeg_options is None and isinstance(target, str) and not target.lower().startswith(STREAM_SCHEMES)

    def close(self) -> None:
        """Release the capture (and what feeds it); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self.capture.release()
        finally:
            if self._on_close is not None:
                self._on_close()

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
            self.close()


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
