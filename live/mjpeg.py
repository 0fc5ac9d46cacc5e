"""Frames as a Motion-JPEG stream, the format a browser's ``<img>`` plays as it arrives."""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

BOUNDARY = "frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


def mjpeg_stream(frames: Iterable[np.ndarray], boundary: str = BOUNDARY, quality: int = 80) -> Iterator[bytes]:
    """The parts of a multipart/x-mixed-replace response, one JPEG per frame."""
    import cv2  # imported here so that starting Django does not load OpenCV

    for frame in frames:
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            yield (f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg.tobytes() + b"\r\n")
