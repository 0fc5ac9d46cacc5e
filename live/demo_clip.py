"""The live demo's video of demo faces: real faces drifting, one after the other, across a
plain background. A server has no camera, so the demo (``manage.py demo_video``) and the
tests play faces this way.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from annotator.majority import image_majority
from ferml.faces import find_faces
from ferml.video import open_writer, to_gray


def face_tile(face: np.ndarray, side: int = 144) -> np.ndarray:
    """A tight face crop enlarged to ``side`` pixels plus a replicated border of a sixth of it,

    which makes it look like a face in a photo to OpenCV's detector (SPEC: 74 % found).
    """
    gray = to_gray(np.asarray(face, dtype=np.uint8))
    border = side // 6
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE)


def make_face_clip(faces: list[np.ndarray], out, seconds_per_face: float = 2.0, fps: float = 15.0,
                   size: tuple[int, int] = (480, 320), face_side: int = 144, step: int = 4) -> Path:
    """A clip in which each face image in turn drifts across a plain background;
    ``step`` is the drift in pixels per frame."""
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


def detectable_faces_by_majority(study_dir: Path, per_label: int) -> list[np.ndarray]:
    """The first ``per_label`` faces of each majority label of a study (``votes.csv`` and
    ``images/``) whose tile the detector finds; images whose votes tie are left out."""
    votes = defaultdict(list)
    with open(study_dir / "votes.csv", newline="") as f:
        for row in csv.DictReader(f):
            votes[row["image"]].append(row["label"])
    chosen = defaultdict(list)
    for image, labels in sorted(votes.items()):
        label = image_majority(labels).label
        if label is None or len(chosen[label]) >= per_label:
            continue
        face = np.asarray(Image.open(study_dir / "images" / image).convert("L"))
        if find_faces(face_tile(face)):
            chosen[label].append(face)
    return [face for label in sorted(chosen) for face in chosen[label]]
