"""Pack FER2013 Training + PublicTest into a zip small enough to travel to a GPU machine.

The Kaggle csv is 85 MB gzipped; as lossless WebP images in a class-per-folder zip
(``train/<label>/row-NNNNN.webp``, ``val/...``) the same pixels take about 52 MB, which
ferml reads as it reads any image tree (``--data fer2013-trval.zip --split train``).
Every image is decoded again and compared with its row before the zip is kept.

    .venv/bin/python -m ferml.pack [--data CSV] [--out ZIP]
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from .data import decode_image, read_fer2013

ROOT = Path(__file__).resolve().parents[1]

SPLITS = {"train": "train", "val": "val"}


def webp_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def pack(csv_path: Path, out: Path) -> dict[str, int]:
    counts = {}
    partial = out.with_suffix(".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    # WebP is already compressed: store, don't deflate
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for split, folder in SPLITS.items():
            raw = read_fer2013(csv_path, split=split)
            for image, name, key in zip(raw.images, raw.names, raw.keys):
                data = webp_bytes(image)
                if not np.array_equal(decode_image(data, key), image):
                    raise SystemExit(f"{key}: WebP round trip changed the pixels; not packing")
                archive.writestr(f"{folder}/{name}/{key}.webp", data)
            counts[folder] = len(raw.images)
    partial.replace(out)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/fer2013/fer2013.csv.gz"))
    parser.add_argument("--out", default=str(ROOT / "runs/gpu-data/fer2013-trval.zip"))
    args = parser.parse_args()
    if not Path(args.data).is_file():
        print(f"{args.data}: not found (pass --data PATH to the FER2013 csv)", file=sys.stderr)
        return 2
    counts = pack(Path(args.data), Path(args.out))
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {', '.join(f'{n} {s}' for s, n in counts.items())} images, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
