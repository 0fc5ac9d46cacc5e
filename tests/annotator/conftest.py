"""Real FER2013 faces for the annotator tests, decoded from the committed sample at test time."""
from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from .helpers import FERPLUS_BIN3, FerFace, write_faces


@pytest.fixture(scope="session")
def fer_faces(fer_sample_csv) -> list[FerFace]:
    with gzip.open(fer_sample_csv, "rt", newline="") as fileobj:
        return [
            FerFace(int(r["row"]), int(r["emotion"]), r["Usage"],
                    np.array(r["pixels"].split(), dtype=np.uint8).reshape(48, 48))
            for r in csv.DictReader(fileobj)
        ]


@pytest.fixture(scope="session")
def ferplus_bin3_votes(ferplus_sample_csv) -> dict[int, list[str]]:
    """FER+ crowd votes per FER2013 row, binned to bin3 (unknown and NF dropped)."""
    votes = {}
    with open(ferplus_sample_csv, newline="") as fileobj:
        for r in csv.DictReader(fileobj):
            votes[int(r["row"])] = [
                label for column, label in FERPLUS_BIN3.items() for _ in range(int(r[column]))
            ]
    return votes


@pytest.fixture
def face_folder(tmp_path, fer_faces):
    """Twelve real faces in two subfolders; returns (folder, key -> bytes)."""
    folder = tmp_path / "faces"
    written = write_faces(folder, fer_faces[:12])
    return folder, written


@pytest.fixture
def study(db, tmp_path, fer_faces):
    """A test set 'study' of 8 imported faces; returns the TestSet."""
    from annotator.image_import import import_testset

    folder = tmp_path / "study"
    write_faces(folder, fer_faces[100:108], subfolders=False)
    return import_testset(folder, name="study").testset


@pytest.fixture
def annotators(django_user_model):
    return [django_user_model.objects.create_user(name, password="pw-" + name) for name in ("ann", "bob")]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("boss", password="pw-boss", is_staff=True)
