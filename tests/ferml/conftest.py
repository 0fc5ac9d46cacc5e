import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ferml.labels import FER7
from ferml.video import VideoSource
from live.demo_clip import make_face_clip


@pytest.fixture(scope="session")
def fer_rows(fer_sample_csv) -> pd.DataFrame:
    return pd.read_csv(fer_sample_csv)


def face(pixels: str) -> np.ndarray:
    return np.array(pixels.split(), dtype=np.uint8).reshape(48, 48)


@pytest.fixture
def face_tree(tmp_path, fer_rows):
    """Real faces as a class-per-folder tree: 5 Training faces per emotion."""
    root = tmp_path / "tree"
    train = fer_rows[fer_rows.Usage == "Training"]
    for code, name in enumerate(FER7):
        (root / name).mkdir(parents=True)
        for row in train[train.emotion == code].head(5).itertuples():
            Image.fromarray(face(row.pixels)).save(root / name / f"row{row.row}.png")
    return root


# --- a clip of real faces for the live demo's tests ---------------------------------------

CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def boxes_found(gray):
    """OpenCV's detector called directly, independent of ferml.faces."""
    return [tuple(int(v) for v in b) for b in CASCADE.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)]


@pytest.fixture(scope="session")
def clip_faces(fer_rows, tmp_path_factory):
    """Three real PublicTest faces that the detector finds in every analysed frame of their clip.

    The detector misses some faces in some positions; the live demo's tests count tracks
    and labels exactly, so they play faces it finds throughout.
    """
    folder = tmp_path_factory.mktemp("candidates")
    faces = []
    for row in fer_rows[fer_rows.Usage == "PublicTest"].itertuples():
        pixels = face(row.pixels)
        frames = list(VideoSource(str(make_face_clip([pixels], folder / f"{row.row}.avi"))).frames())
        if all(len(boxes_found(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))) == 1 for f in frames[::3]):
            faces.append(pixels)
        if len(faces) == 3:
            return faces
    raise AssertionError("the sample holds fewer than three faces found throughout their clip")


@pytest.fixture(scope="session")
def clip(clip_faces, tmp_path_factory):
    """A 15 fps clip: each face drifts 4 px per frame for 2 seconds (30 frames)."""
    return make_face_clip(clip_faces, tmp_path_factory.mktemp("live") / "faces.avi")


@pytest.fixture(scope="session")
def frames(clip):
    return list(VideoSource(str(clip)).frames())


def load_model(path):
    """(network in eval mode, preprocessor, checkpoint dict) of a checkpoint file, built by
    hand beside ``Predictor``: what the tests compare it with."""
    from ferml.checkpoint import build_model, read_checkpoint
    from ferml.preprocess import Preprocessor

    checkpoint = read_checkpoint(path)
    return build_model(checkpoint, path).eval(), Preprocessor.from_dict(checkpoint["preprocess"]), checkpoint
