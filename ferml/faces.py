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
# Larger photos are searched at this size: full-resolution search of a camera photo takes
# seconds and finds the same faces, which are large there anyway.
SEARCH_MAX_SIDE = 1024


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


def find_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Every face box (x, y, w, h) in ``gray``'s pixels; large images are searched downscaled."""
    scale = max(gray.shape) / SEARCH_MAX_SIDE
    if scale <= 1:
        return detect_faces(gray)
    import cv2

    small = cv2.resize(gray, (round(gray.shape[1] / scale), round(gray.shape[0] / scale)),
                       interpolation=cv2.INTER_AREA)
    boxes = []
    for box in detect_faces(small):
        x, y, w, h = (round(v * scale) for v in box)
        # Rounding after scaling back must not push the box past the image edge.
        boxes.append((x, y, min(w, gray.shape[1] - x), min(h, gray.shape[0] - y)))
    return boxes


def largest_face(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The face box (in ``gray``'s pixels) with the largest area, or None without a face."""
    boxes = find_faces(gray)
    if not boxes:
        return None
    return max(boxes, key=lambda b: (b[2] * b[3], -b[1], -b[0]))
