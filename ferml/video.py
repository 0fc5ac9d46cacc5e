"""Video in and out for the live demo: cameras, streams and files to read, files to write.

OpenCV is imported inside the functions, so that importing this module (the Django
apps do) does not load it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mjpeg", ".mjpg"}
STREAM_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://")


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
