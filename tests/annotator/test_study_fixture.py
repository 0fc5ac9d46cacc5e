"""scripts/fixtures/make_ferplus_study: one image per FER+ row, each of its own content, with
the FER+ crowd's votes (or synthetic ones without the data), and it imports as it is."""
import json
import sys

import numpy as np
import pandas as pd
import pytest

from annotator.models import Image, RepeatedFile, Vote
from ferml.ferplus import ferplus_votes
from scripts.fixtures import make_ferplus_study as fixture

from .helpers import run

pytestmark = pytest.mark.django_db
N = 30


@pytest.fixture
def shared(tmp_path, fer_sample_csv, ferplus_sample_csv):
    """FER2013 and FER+ files of rows 0..29 (real sample rows, renumbered): row 7's face is
    missing (as PrivateTest is) and row 12 repeats row 3's face."""
    faces = pd.read_csv(fer_sample_csv).head(N).assign(row=range(N))
    faces.loc[12, "pixels"] = faces.loc[3, "pixels"]
    fer = tmp_path / "fer2013.csv.gz"
    faces.drop(index=7).to_csv(fer, index=False)
    plus = tmp_path / "fer2013new.csv"
    pd.read_csv(ferplus_sample_csv).head(N).assign(row=range(N)).to_csv(plus, index=False)
    return fer, plus, faces


def build(monkeypatch, tmp_path, fer, plus):
    monkeypatch.setattr(fixture, "FER2013", fer)
    monkeypatch.setattr(fixture, "FERPLUS", plus)
    out = tmp_path / "study"
    monkeypatch.setattr(sys, "argv", ["make_ferplus_study", "--out", str(out), "--limit", str(N)])
    fixture.main()
    return out


def pixels(path):
    from PIL import Image as PILImage

    with PILImage.open(path) as image:
        return np.asarray(image)


def test_real_faces_and_the_crowds_votes_each_row_an_image(monkeypatch, tmp_path, shared):
    fer, plus, faces = shared
    out = build(monkeypatch, tmp_path, fer, plus)
    meta = json.loads((out / "study.json").read_text())
    assert meta["stand_in_rows"] == [7, 12] and meta["n_images"] == N
    for row in (0, 3, 29):
        real = np.array(faces.loc[row, "pixels"].split(), dtype=np.uint8).reshape(48, 48)
        assert (pixels(out / "images" / f"row-{row:05d}.png") == real).all()
    contents = {pixels(path).tobytes() for path in (out / "images").glob("*.png")}
    assert len(contents) == N
    votes = pd.read_csv(out / "votes.csv")
    expected = ferplus_votes(plus, "bin3", seed=0, image_key=fixture.KEY)
    assert sorted(map(tuple, votes.to_numpy())) == sorted(map(tuple, expected.to_numpy()))
    assert meta["n_votes"] == len(votes)

    run("import_testset", str(out / "images"), "--name", "ferplus")
    out_text, _ = run("import_votes", str(out / "votes.csv"), "--testset", "ferplus")
    assert Image.objects.count() == N and not RepeatedFile.objects.exists()
    assert Vote.objects.count() == len(votes) and "left out" not in out_text
    # the same arguments write the same files
    before = (out / "votes.csv").read_bytes(), (out / "images" / "row-00012.png").read_bytes()
    build(monkeypatch, tmp_path, fer, plus)
    assert ((out / "votes.csv").read_bytes(), (out / "images" / "row-00012.png").read_bytes()) == before


def test_without_the_data_the_study_is_synthetic_at_the_same_size(monkeypatch, tmp_path):
    out = build(monkeypatch, tmp_path, tmp_path / "absent.csv.gz", tmp_path / "absent.csv")
    meta = json.loads((out / "study.json").read_text())
    assert meta["source"].startswith("synthetic") and meta["n_images"] == N
    votes = pd.read_csv(out / "votes.csv")
    assert votes["annotator"].nunique() == 10 and 0.85 * 10 * N < len(votes) <= 10 * N
    assert set(votes["label"]) == {"negative", "neutral", "positive"}
    assert len(list((out / "images").glob("*.png"))) == N


def test_a_stand_in_for_a_blank_face_is_new_content_too():
    blank = np.full((48, 48), 17, dtype=np.uint8)
    seen = {fixture._digest(blank)}
    stand_in = fixture._new_content(blank, seen)
    assert fixture._digest(stand_in) not in seen and (stand_in != blank).sum() == 1
