"""Pack FER2013 Training + PublicTest into a zip small enough to travel to a GPU machine.

The Kaggle csv is 85 MB gzipped; as lossless WebP images in a class-per-folder zip
(``train/<label>/row-NNNNN.webp``, ``val/...``) the same pixels take about 52 MB, which
ferml reads as it reads any image tree (``--data fer2013-trval.zip --split train``).
The images keep their FER2013 row in their names (``row-NNNNN``), so ``--ferplus``
relabels the zip as it does the csv, and a ``--val-split drawn`` from it draws the same
faces for validation. ``--splits train`` packs Training alone (about 48 MiB), for a
training run that validates on images drawn from it. Every image is decoded again and compared
with its row before the zip is kept.

``--weights-copy CHECKPOINT OUT`` writes a checkpoint with 16-bit weights, half the
size: a starting point for ``ferml train --init`` there, or a trained model on its way
back (float16; ``ferml export`` then says what that precision changes).

    .venv/bin/python -m ferml.pack [--data CSV] [--out ZIP] [--splits train val]
    .venv/bin/python -m ferml.pack --weights-copy CHECKPOINT OUT [--dtype bfloat16|float16]
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from .data import decode_image, read_fer2013

ROOT = Path(__file__).resolve().parents[1]

SPLITS = {"train": "train", "val": "val"}


def webp_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def pack(csv_path: Path, out: Path, splits=tuple(SPLITS)) -> dict[str, int]:
    counts = {}
    partial = out.with_suffix(".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    # WebP is already compressed: store, don't deflate
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for split in splits:
            folder = SPLITS[split]
            raw = read_fer2013(csv_path, split=split)
            for image, name, key in zip(raw.images, raw.names, raw.keys):
                data = webp_bytes(image)
                if not np.array_equal(decode_image(data, key), image):
                    raise SystemExit(f"{key}: WebP round trip changed the pixels; not packing")
                archive.writestr(f"{folder}/{name}/{key}.webp", data)
            counts[folder] = len(raw.images)
    partial.replace(out)
    return counts


WEIGHT_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def weights_copy(checkpoint_path: Path, out: Path, dtype: str = "bfloat16") -> Path:
    """A checkpoint with its weights in 16 bits, half the size: to start training from
    (--init) on a machine a call carries it to, or to bring a trained one back. Batch-norm
    statistics stay float32 (a variance can be smaller than float16 holds)."""
    checkpoint = read_checkpoint(checkpoint_path)
    if "members" in checkpoint:
        raise CheckpointError(f"{checkpoint_path}: an ensemble has no weights of its own to copy")
    checkpoint["state_dict"] = {
        k: v.to(WEIGHT_DTYPES[dtype]) if v.is_floating_point() and "running_" not in k else v
        for k, v in checkpoint["state_dict"].items()}
    checkpoint["train"] = {**checkpoint.get("train", {}), "weights_copy": f"{dtype} copy of {checkpoint_path.name}"}
    return save_checkpoint(checkpoint, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/fer2013/fer2013.csv.gz"))
    parser.add_argument("--out", default=str(ROOT / "runs/gpu-data/fer2013-trval.zip"))
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), default=list(SPLITS),
                        help="which FER2013 splits to pack (default: train val)")
    parser.add_argument("--weights-copy", nargs=2, metavar=("CHECKPOINT", "OUT"),
                        help="write a 16-bit copy of CHECKPOINT's weights to OUT and stop")
    parser.add_argument("--dtype", choices=list(WEIGHT_DTYPES), default="bfloat16",
                        help="the copy's number format (default bfloat16: float32's range)")
    args = parser.parse_args()
    if args.weights_copy:
        source, out = map(Path, args.weights_copy)
        try:
            weights_copy(source, out, args.dtype)
        except CheckpointError as exc:
            print(exc, file=sys.stderr)
            return 2
        print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB (from {source.stat().st_size / 2**20:.1f} MiB)")
        return 0
    if not Path(args.data).is_file():
        print(f"{args.data}: not found (pass --data PATH to the FER2013 csv)", file=sys.stderr)
        return 2
    counts = pack(Path(args.data), Path(args.out), args.splits)
    size = Path(args.out).stat().st_size
    print(f"{args.out}: {', '.join(f'{n} {s}' for s, n in counts.items())} images, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
