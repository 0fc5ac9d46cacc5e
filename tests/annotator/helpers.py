"""Helpers for the annotator tests: real FER faces on disk, zips, command runs."""
from __future__ import annotations

import hashlib
import io
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.management import call_command
from PIL import Image as PILImage

FERPLUS_BIN3 = {
    "neutral": "neutral", "surprise": "neutral", "happiness": "positive",
    "sadness": "negative", "anger": "negative", "disgust": "negative", "fear": "negative",
    "contempt": "negative",
}


@dataclass(frozen=True)
class FerFace:
    row: int
    emotion: int
    usage: str
    pixels: np.ndarray  # 48 x 48 uint8


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_faces(folder: Path, faces: list[FerFace], *, subfolders: bool = True) -> dict[str, bytes]:
    """Write faces as PNGs; keys like ``usage/fer00123.png``. Returns key -> file bytes."""
    written = {}
    for face in faces:
        key = f"{face.usage}/fer{face.row:05d}.png" if subfolders else f"fer{face.row:05d}.png"
        data = png_bytes(face.pixels)
        path = folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written[key] = data
    return written


def zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return out


def upscaled_face(pixels: np.ndarray, factor: int = 4, border: int = 24) -> np.ndarray:
    """A FER crop made photo-like: upscaled and given a replicated border (SPEC: ~74 % detectable)."""
    import cv2

    big = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE)


def login(client, user):
    client.force_login(user)
    return client


def run(*args) -> tuple[str, str]:
    """Run a management command; return (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def shuffled_votes(votes: dict[int, list[str]], seed: int = 0) -> dict[int, list[str]]:
    rng = random.Random(seed)
    return {row: rng.sample(labels, len(labels)) for row, labels in votes.items()}


def annotator_order(annotator, image_ids) -> list[int]:
    """The definition of an annotator's own order of images (the one the labelling page
    follows): by a hash of annotator and image, fixed for ever."""
    from annotator.voting import _rank

    return sorted(image_ids, key=lambda image_id: _rank(annotator.pk, image_id))
