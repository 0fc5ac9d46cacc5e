"""ferml.pack: the compact copy of FER2013 that travels to a GPU machine."""
from pathlib import Path

import numpy as np
import pytest
import torch

from ferml.checkpoint import make_checkpoint, read_checkpoint, save_checkpoint
from ferml.data import (
    DataError,
    MissingSplitError,
    draw_mask,
    load_dataset,
    read_fer2013,
    read_image_tree,
)
from ferml.labels import FER7
from ferml.models import create_model
from ferml.pack import pack, weights_copy
from ferml.preprocess import Preprocessor
from ferml.train import TrainConfig, train


def test_packed_zip_holds_the_same_pixels_and_labels(fer_sample_csv, tmp_path):
    out = tmp_path / "fer-trval.zip"
    counts = pack(fer_sample_csv, out)
    assert counts == {"train": 140, "val": 300}
    assert out.stat().st_size < fer_sample_csv.stat().st_size  # smaller than the gzipped csv
    for split in ("train", "val"):
        rows = read_fer2013(fer_sample_csv, split=split)
        packed = read_image_tree(out, split=split)
        by_key = {key: (image, name) for image, name, key in zip(rows.images, rows.names, rows.keys)}
        assert len(packed.keys) == len(by_key)
        for image, name, rel in zip(packed.images, packed.names, packed.keys):
            original, label = by_key[Path(rel).stem]
            assert label == name and np.array_equal(original, image)
    # what training sees: the same images and labels, whatever the order
    from_csv, from_zip = load_dataset(fer_sample_csv, split="val"), load_dataset(out, split="val")
    assert sorted(map(bytes, from_csv.images)) == sorted(map(bytes, from_zip.images))
    assert np.bincount(from_csv.labels).tolist() == np.bincount(from_zip.labels).tolist()


def test_packed_zip_is_relabelled_by_ferplus_and_holds_out_the_csvs_faces(fer_sample_csv, ferplus_sample_csv,
                                                                          tmp_path):
    out = tmp_path / "fer-train.zip"
    assert pack(fer_sample_csv, out, splits=["train"]) == {"train": 140}
    with pytest.raises(MissingSplitError):
        read_image_tree(out, split="val")
    options = dict(label_set="affect8", split="train", ferplus=ferplus_sample_csv, ferplus_mode="bins",
                   keep_all_voted=True)
    from_csv, from_zip = load_dataset(fer_sample_csv, **options), load_dataset(out, **options)
    assert from_zip.keys[0].startswith("row-") and sorted(from_zip.keys) == sorted(from_csv.keys)
    assert from_zip.skipped == from_csv.skipped
    by_key = {key: (image, label, target) for key, image, label, target
              in zip(from_csv.keys, from_csv.images, from_csv.labels, from_csv.targets)}
    for key, image, label, target in zip(from_zip.keys, from_zip.images, from_zip.labels, from_zip.targets):
        assert np.array_equal(by_key[key][0], image) and by_key[key][1] == label
        assert np.array_equal(by_key[key][2], target)
    # the same keys, so the same seeded holdout: fine-tuning on the zip never trains on
    # the faces that chose the csv-trained checkpoint
    csv_held = {k for k, h in zip(from_csv.keys, draw_mask(from_csv.keys, 0, 0.2)) if h}
    zip_held = {k for k, h in zip(from_zip.keys, draw_mask(from_zip.keys, 0, 0.2)) if h}
    assert csv_held == zip_held and 0 < len(zip_held) < len(from_zip.keys)


def test_ferplus_refuses_an_image_tree_that_is_not_packed_fer2013(face_tree, ferplus_sample_csv):
    with pytest.raises(DataError, match="--ferplus relabels FER2013 faces by row.*is neither"):
        load_dataset(face_tree, "affect8", ferplus=ferplus_sample_csv)


def test_weights_copy_halves_a_densenet_and_starts_training_from_it(fer_sample_csv, tmp_path):
    model = create_model("dense121", num_classes=7)
    with torch.no_grad():  # batch-norm statistics as training leaves them: some variances tiny
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(torch.rand_like(buffer) * 1e-6)
    source = save_checkpoint(make_checkpoint(model, {"name": "dense121", "num_classes": 7, "in_channels": 1},
                                             "fer7", list(FER7), Preprocessor(42, 1)), tmp_path / "dense121.pt")
    copy = weights_copy(source, tmp_path / "dense121.bf16.pt")
    assert copy.stat().st_size < source.stat().st_size * 0.55
    state, original = read_checkpoint(copy)["state_dict"], read_checkpoint(source)["state_dict"]
    assert state["fc.weight"].dtype == torch.bfloat16
    # float16 would flush these variances to zero; they stay float32, exactly
    assert all(torch.equal(state[k], original[k]) for k in original if "running_" in k)
    assert torch.allclose(state["fc.weight"].float(), original["fc.weight"], rtol=1e-2, atol=1e-3)
    logged = []
    cfg = TrainConfig(model="dense121", data=str(fer_sample_csv), init=str(copy), epochs=1, batch_size=16,
                      limit=16, augment=False, out=str(tmp_path / "tuned.pt"), progress=False)
    train(cfg, log=logged.append)
    assert any("initialized 727 of 727 weight tensors" in line for line in logged)
