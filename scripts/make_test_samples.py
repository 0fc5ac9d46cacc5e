"""Derive the small real samples the test suite ships from ../shared/data.

Writes tests/data/fer2013_sample.csv.gz (Kaggle columns plus the original ``row``) and
tests/data/ferplus_sample.csv (the FER+ vote lines of the same rows, with ``row``).
Re-running with the same seed reproduces the files.
"""
import argparse
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--public", type=int, default=300, help="PublicTest rows")
    parser.add_argument("--train-per-class", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    fer = pd.read_csv(SHARED / "fer2013" / "fer2013.csv.gz")
    votes = pd.read_csv(SHARED / "ferplus" / "fer2013new.csv")
    public = fer[fer.Usage == "PublicTest"]
    picked = [public.iloc[np.sort(rng.choice(len(public), args.public, replace=False))]]
    train = fer[fer.Usage == "Training"]
    for code in range(7):
        rows = train[train.emotion == code]
        picked.append(rows.iloc[np.sort(rng.choice(len(rows), args.train_per_class, replace=False))])
    sample = pd.concat(picked).sort_values("row")
    out = ROOT / "tests" / "data"
    out.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out / "fer2013_sample.csv.gz", "wb", mtime=0) as fh:
        fh.write(sample.to_csv(index=False).encode())
    vote_rows = votes.iloc[sample.row.to_numpy()].copy()
    vote_rows.insert(0, "row", sample.row.to_numpy())
    vote_rows.to_csv(out / "ferplus_sample.csv", index=False)
    print(f"wrote {len(sample)} rows ({args.public} PublicTest) to {out}")


if __name__ == "__main__":
    main()
