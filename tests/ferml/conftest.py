import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ferml.labels import FER7


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
