"""Build the shipped demo study (fixtures/demo/) from ../shared/data.

A balanced 3 x 35 = 105-image test set like the thesis' (section 7.2), drawn with a
fixed seed from FER2013 PublicTest rows by the FER+ majority in bin3 terms, with each
image's real FER+ crowd votes binned to bin3 and handed to annotators a01..a10 in a
seeded order per image. Re-running with the same seed rewrites identical files.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.ferplus import ferplus_votes  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
LABELS = ["negative", "neutral", "positive"]
KEY = "row-{row:05d}.png"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--per-label", type=int, default=35,
                        help="images per majority label; 0 keeps every image (ties included)")
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures" / "demo")
    args = parser.parse_args()

    fer = pd.read_csv(SHARED / "fer2013" / "fer2013.csv.gz")
    public = fer[fer.Usage == "PublicTest"].set_index("row")
    votes = ferplus_votes(SHARED / "ferplus" / "fer2013new.csv", "bin3", seed=args.seed,
                          usage="PublicTest", image_key=KEY)
    counts = votes.groupby(["image", "label"]).size().unstack(fill_value=0).reindex(columns=LABELS, fill_value=0)
    top = counts.max(axis=1)
    unique = (counts.eq(top, axis=0)).sum(axis=1) == 1
    majority = counts[unique].idxmax(axis=1)

    # FER2013 repeats some faces under several rows; a test set keeps one image per content
    first_of_face = {KEY.format(row=row) for row in public.drop_duplicates("pixels").index}
    rng = np.random.default_rng(args.seed)
    if args.per_label == 0:
        chosen = sorted(set(counts.index) & first_of_face)
    else:
        chosen = []
        for label in LABELS:
            pool = sorted(set(majority[majority == label].index) & first_of_face)
            chosen += sorted(rng.choice(pool, args.per_label, replace=False).tolist())
        chosen = sorted(chosen)

    images_dir = args.out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.glob("*.png"):
        old.unlink()
    for key in chosen:
        row = int(key[4:9])
        pixels = np.array(public.loc[row, "pixels"].split(), dtype=np.uint8).reshape(48, 48)
        Image.fromarray(pixels).save(images_dir / key, optimize=True)
    study_votes = votes[votes.image.isin(chosen)].sort_values(["image", "annotator"])
    study_votes.to_csv(args.out / "votes.csv", index=False)
    meta = {
        "seed": args.seed, "per_label": args.per_label, "n_images": len(chosen),
        "n_votes": int(len(study_votes)), "annotators": sorted(study_votes.annotator.unique().tolist()),
        "ferplus_majority_counts": {label: int((majority.reindex(chosen) == label).sum()) for label in LABELS},
        "fer2013_rows": [int(k[4:9]) for k in chosen],
    }
    (args.out / "study.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(chosen)} images and {len(study_votes)} votes to {args.out}")


if __name__ == "__main__":
    main()
