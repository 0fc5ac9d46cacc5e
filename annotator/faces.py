"""Face detection with OpenCV's bundled frontal-face Haar cascade.

OpenCV 4.x ships the cascade files inside the package (``cv2.data.haarcascades``);
OpenCV 5 dropped them, which is why requirements pin ``<5``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# OpenCV's customary settings; tests reproduce detection with the same values.
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5


@lru_cache(maxsize=1)
def _cascade():
    import cv2  # imported here so that starting Django does not load OpenCV

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE_FILE)
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load {CASCADE_FILE} from {cv2.data.haarcascades}")
    return cascade


def detect_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Every face box (x, y, w, h) that the cascade finds in a 2-D uint8 image."""
    boxes = _cascade().detectMultiScale(gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS)
    return [tuple(int(v) for v in box) for box in boxes]


def largest_face(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The face box with the largest area, or None when there is no face."""
    boxes = detect_faces(gray)
    if not boxes:
        return None
    return max(boxes, key=lambda b: (b[2] * b[3], -b[1], -b[0]))
