import gzip
import zipfile
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ferml.data import DataError, load_dataset, read_fer2013
from ferml.labels import BIN3, FER7, POS2, binning_matrix, map_label

from .conftest import face


def test_fer2013_reader_splits_and_labels(fer_sample_csv, fer_rows):
    val = load_dataset(fer_sample_csv, "fer7", split="val")
    public = fer_rows[fer_rows.Usage == "PublicTest"]
    assert len(val) == len(public) == 300
    assert val.images.shape == (300, 1, 42, 42) and val.images.dtype == np.uint8
    assert [FER7[i] for i in val.labels] == [FER7[c] for c in public.emotion]
    assert val.keys[0] == f"row-{public.row.iloc[0]:05d}"
    train = load_dataset(fer_sample_csv, "fer7", split="train")
    assert Counter(train.labels.tolist()) == {i: 20 for i in range(7)}
    assert len(load_dataset(fer_sample_csv, "fer7")) == 440  # no split: every row


def test_fer2013_reader_keeps_pixels(fer_sample_csv, fer_rows):
    raw = read_fer2013(fer_sample_csv, split="val")
    np.testing.assert_array_equal(raw.images[0], face(fer_rows[fer_rows.Usage == "PublicTest"].pixels.iloc[0]))
    big = load_dataset(fer_sample_csv, "fer7", size=100, channels=3, split="val")
    assert big.images.shape == (300, 3, 100, 100)
    assert (big.images[:, 0] == big.images[:, 1]).all()  # grayscale replicated into RGB


def test_bin3_and_surprise_handling(fer_sample_csv, fer_rows):
    val = fer_rows[fer_rows.Usage == "PublicTest"]
    expected = Counter(map_label(FER7[c], "bin3") for c in val.emotion)
    got = load_dataset(fer_sample_csv, "bin3", split="val")
    assert Counter(BIN3[i] for i in got.labels) == expected
    nosurprise = load_dataset(fer_sample_csv, "bin3-nosurprise", split="val")
    n_surprise = int((val.emotion == 5).sum())
    assert len(nosurprise) == 300 - n_surprise
    assert nosurprise.skipped["surprise dropped by bin3-nosurprise"] == n_surprise
    pos = load_dataset(fer_sample_csv, "pos2", split="val")
    assert Counter(POS2[i] for i in pos.labels)["positive"] == int((val.emotion == 3).sum())


def test_ferplus_majority_and_plurality(fer_sample_csv, ferplus_sample_csv):
    votes = pd.read_csv(ferplus_sample_csv).set_index("row")
    cols = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    counts = votes[cols].to_numpy()
    top = counts.max(1)
    unique_top = (counts == top[:, None]).sum(1) == 1
    real = votes["NF"].to_numpy() * 2 <= votes["NF"].to_numpy() + counts.sum(1)
    majority = unique_top & real & (top * 2 > counts.sum(1))
    data = load_dataset(fer_sample_csv, "affect8", ferplus=ferplus_sample_csv, ferplus_mode="majority")
    assert len(data) == int(majority.sum())
    plural = load_dataset(fer_sample_csv, "affect8", ferplus=ferplus_sample_csv, ferplus_mode="plurality")
    assert len(plural) == int((unique_top & real).sum()) > len(data)
    # the first kept image carries the argmax of its own row's votes
    first_row = int(data.keys[0].split("-")[1])
    names = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    assert data.classes[data.labels[0]] == names[int(votes.loc[first_row, cols].to_numpy().argmax())]


def write_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)


def test_malformed_rows_name_file_and_row(tmp_path, fer_rows):
    good = fer_rows.iloc[:3][["emotion", "pixels", "Usage"]].to_dict("records")
    short = dict(good[0], pixels=" ".join(good[0]["pixels"].split()[:-1]))
    path = tmp_path / "broken.csv"
    write_csv(path, [good[0], short, good[1]])
    with pytest.raises(DataError, match=r"broken.csv line 3 \(row 1\): 2303 pixel values"):
        load_dataset(path)
    data = load_dataset(path, skip_bad=True)
    assert len(data) == 2 and data.skipped["malformed row"] == 1

    write_csv(path, [good[0], dict(good[1], emotion=9)])
    with pytest.raises(DataError, match=r"line 3 \(row 1\): unknown emotion code"):
        load_dataset(path)
    write_csv(path, [dict(good[0], pixels="a b c")])
    with pytest.raises(DataError, match="not whole numbers"):
        load_dataset(path)
    write_csv(path, [{"emotion": 1, "pix": "1 2"}])
    with pytest.raises(DataError, match="missing column"):
        load_dataset(path)
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="broken.csv"):
        load_dataset(path)


def test_gzip_csv_and_split_errors(tmp_path, fer_rows):
    path = tmp_path / "nousage.csv.gz"
    with gzip.open(path, "wt") as fh:
        fer_rows.iloc[:4][["emotion", "pixels"]].to_csv(fh, index=False)
    assert len(load_dataset(path)) == 4
    with pytest.raises(DataError, match="no Usage column"):
        load_dataset(path, split="val")
    with pytest.raises(DataError, match="unknown split"):
        load_dataset(path, split="holdout")


def test_folder_tree_and_zip(face_tree, tmp_path):
    data = load_dataset(face_tree, "fer7")
    assert len(data) == 35 and Counter(data.labels.tolist()) == {i: 5 for i in range(7)}
    binned = load_dataset(face_tree, "bin3")
    assert Counter(BIN3[i] for i in binned.labels) == {"negative": 20, "neutral": 10, "positive": 5}
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(face_tree.rglob("*.png")):
            zf.write(p, p.relative_to(face_tree).as_posix())
        zf.writestr("tie/odd.png", (face_tree / "happy").iterdir().__next__().read_bytes())
        zf.writestr("votes.csv", "image,majority\n")
    from_zip = load_dataset(archive, "fer7")
    assert len(from_zip) == 35 and from_zip.skipped["in tie/"] == 1
    np.testing.assert_array_equal(np.sort(from_zip.images.sum((1, 2, 3))), np.sort(data.images.sum((1, 2, 3))))


def test_folder_tree_bad_files(face_tree):
    (face_tree / "happy" / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_dataset(face_tree)
    assert load_dataset(face_tree, skip_bad=True).skipped["unreadable image"] == 1
    (face_tree / "happy" / "broken.png").unlink()
    (face_tree / "bored").mkdir()
    Image.new("L", (48, 48)).save(face_tree / "bored" / "x.png")
    with pytest.raises(DataError, match="folder 'bored'"):
        load_dataset(face_tree)


def test_folder_tree_splits(face_tree, tmp_path):
    root = tmp_path / "split"
    for split in ("train", "val"):
        for p in face_tree.rglob("*.png"):
            target = root / split / p.parent.name / p.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())
    assert len(load_dataset(root, split="val")) == 35
    assert len(load_dataset(root)) == 70


def test_affectnet_layout(tmp_path, fer_rows):
    images = tmp_path / "affectnet" / "Manually_Annotated_Images"
    (images / "1").mkdir(parents=True)
    rows = []
    for i, r in enumerate(fer_rows.head(6).itertuples()):
        canvas = np.zeros((96, 96), np.uint8)
        canvas[20:68, 30:78] = face(r.pixels)
        Image.fromarray(canvas).save(images / "1" / f"{i}.jpg", quality=95)
        rows.append({"subDirectory_filePath": f"1/{i}.jpg", "face_x": 30, "face_y": 20, "face_width": 48,
                     "face_height": 48, "facial_landmarks": "", "expression": [1, 6, 7, 8, 10, 3][i],
                     "valence": 0, "arousal": 0})
    lists = tmp_path / "affectnet" / "Manually_Annotated_file_lists"
    lists.mkdir()
    pd.DataFrame(rows).to_csv(lists / "training.csv", index=False)
    data = load_dataset(tmp_path / "affectnet", "affect8", size=48, split="train")
    assert [data.classes[i] for i in data.labels] == ["happy", "angry", "contempt", "surprise"]
    assert data.skipped == {"AffectNet none": 1, "AffectNet no face": 1}
    # the crop is the face box: JPEG round trip stays close to the original pixels
    assert np.abs(data.images[0, 0].astype(int) - face(fer_rows.iloc[0].pixels).astype(int)).mean() < 4
    binned = load_dataset(lists / "training.csv", "bin3")
    assert [binned.classes[i] for i in binned.labels] == ["positive", "negative", "negative", "neutral"]


def test_retroactive_binning_matrix():
    m = binning_matrix(FER7, "bin3")
    probs = np.array([[0.1, 0.05, 0.05, 0.3, 0.1, 0.2, 0.2]])
    np.testing.assert_allclose(probs @ m, [[0.3, 0.4, 0.3]])
    m2 = binning_matrix(FER7, "pos2")
    np.testing.assert_allclose(probs @ m2, [[0.7, 0.3]])
    ns = binning_matrix(FER7, "bin3-nosurprise")
    np.testing.assert_allclose(probs @ ns, [[0.3, 0.2, 0.3]])
    assert map_label("contempt", "bin3") == "negative"
