"""ferml.pack: the compact copy of FER2013 that travels to a GPU machine."""
from pathlib import Path

import numpy as np

from ferml.data import load_dataset, read_fer2013, read_image_tree
from ferml.pack import pack


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
