"""FER+ crowd votes as a study: the conversion of the FER+ csv into one vote per tagger.

The recounts below start from the raw FER+ csv (pandas sums of its columns), not from
the votes that ``ferplus_votes`` builds, so a mistake in the conversion shows up as a
mismatch.
"""

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from evaluation import vote_tables
from ferml.data import FERPLUS_COLUMNS as FERPLUS_EMOTIONS
from ferml.ferplus import ferplus_labels, ferplus_votes

BIN3 = ["negative", "neutral", "positive"]
BIN3_COLUMNS = {
    "negative": ["sadness", "anger", "disgust", "fear", "contempt"],
    "neutral": ["neutral", "surprise"],
    "positive": ["happiness"],
}


def binned_counts(csv_path, usage=None) -> pd.DataFrame:
    """bin3 vote counts per image straight from the csv; rows with no vote left are dropped."""
    frame = pd.read_csv(csv_path)
    if "row" not in frame.columns:
        frame["row"] = np.arange(len(frame))
    if usage:
        frame = frame[frame["Usage"] == usage]
    counts = pd.DataFrame({label: frame[cols].sum(axis=1) for label, cols in BIN3_COLUMNS.items()})
    counts.index = [f"row-{r:05d}" for r in frame["row"]]
    return counts[counts.sum(axis=1) > 0]


# --------------------------------------------------------------------------- conversion


def test_votes_reproduce_the_binned_counts_without_unknown_and_not_a_face(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    counts = binned_counts(ferplus_sample_csv)
    recount = (
        votes.groupby(["image", "label"])
        .size()
        .unstack(fill_value=0)
        .reindex(columns=BIN3, fill_value=0)
    )
    assert recount.sort_index().to_numpy().tolist() == counts.sort_index().to_numpy().tolist()
    raw = pd.read_csv(ferplus_sample_csv)
    assert len(votes) == raw[FERPLUS_EMOTIONS].to_numpy().sum()  # unknown and NF left no vote


def test_each_image_hands_its_ten_votes_to_a01_a10(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    ten = {f"a{i:02d}" for i in range(1, 11)}
    for _, group in votes.groupby("image"):
        assert group["annotator"].is_unique and set(group["annotator"]) <= ten
    # unknown / not-a-face votes are shuffled in before they are dropped, so the gaps
    # fall on every annotator rather than always on a10
    per_annotator = votes.groupby("annotator").size()
    assert set(per_annotator.index) == ten
    assert per_annotator.max() - per_annotator.min() < 0.2 * per_annotator.max()
    raw = pd.read_csv(ferplus_sample_csv)
    first = raw.iloc[0]
    assert len(votes[votes["image"] == f"row-{first['row']:05d}"]) == first[FERPLUS_EMOTIONS].sum()


def test_the_shuffle_is_seeded_and_hides_the_column_order(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv, seed=0)
    assert votes.equals(ferplus_votes(ferplus_sample_csv, seed=0))
    other = ferplus_votes(ferplus_sample_csv, seed=1)
    assert not votes.equals(other)
    assert vote_tables.vote_counts(votes, BIN3).equals(vote_tables.vote_counts(other, BIN3))
    # Unshuffled, a01 would carry the bin of the first non-zero FER+ column (neutral
    # first) on every image; shuffled, that happens only about as often as chance.
    counts = binned_counts(ferplus_sample_csv)
    raw = pd.read_csv(ferplus_sample_csv).set_index("row")
    a01 = votes[votes["annotator"] == "a01"].set_index("image")["label"]
    mixed = [img for img in counts.index if (counts.loc[img] > 0).sum() > 1]
    first_bin = {
        img: next(
            lab
            for col in FERPLUS_EMOTIONS
            if raw.loc[int(img[4:]), col] > 0
            for lab, cols in BIN3_COLUMNS.items()
            if col in cols
        )
        for img in mixed
    }
    labelled = [img for img in mixed if img in a01.index]  # a01 may have drawn an unknown / NF vote
    assert len(labelled) > 0.8 * len(mixed)
    assert np.mean([a01[img] == first_bin[img] for img in labelled]) < 0.8


def test_usage_filter_image_key_and_label_sets(ferplus_sample_csv):
    public = ferplus_votes(ferplus_sample_csv, usage="PublicTest")
    raw = pd.read_csv(ferplus_sample_csv)
    kept = raw[(raw["Usage"] == "PublicTest") & (raw[FERPLUS_EMOTIONS].sum(axis=1) > 0)]
    assert sorted(public["image"].unique()) == [f"row-{r:05d}" for r in sorted(kept["row"])]

    named = ferplus_votes(ferplus_sample_csv, usage="PublicTest", image_key="fer{row}.png")
    assert named["image"].tolist() == [f"fer{int(img[4:])}.png" for img in public["image"]]
    called = ferplus_votes(ferplus_sample_csv, usage="PublicTest", image_key=lambda row: f"x{row}")
    assert called["image"].tolist() == [f"x{int(img[4:])}" for img in public["image"]]
    assert called["label"].tolist() == public["label"].tolist()

    pos2 = ferplus_votes(ferplus_sample_csv, label_set="pos2")
    assert ferplus_labels("pos2") == ["non-positive", "positive"]
    assert (pos2["label"] == "positive").sum() == raw["happiness"].sum()
    with pytest.raises(ValueError, match="unknown label set 'fer9'; choose one of bin3, pos2"):
        ferplus_votes(ferplus_sample_csv, label_set="fer9")


def test_a_row_without_any_expression_vote_gives_no_image():
    columns = ["Usage", *FERPLUS_EMOTIONS, "unknown", "NF"]
    frame = pd.DataFrame(
        [
            ["PublicTest", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
            ["PublicTest", 6, 4, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        columns=columns,
    )
    votes = ferplus_votes(frame)
    assert set(votes["image"]) == {"row-00001"}  # position is the row when the column is absent
    assert Counter(votes["label"]) == {"neutral": 6, "positive": 4}
    with pytest.raises(ValueError, match="not a FER\\+ vote file"):
        ferplus_votes(frame.drop(columns="NF"))


@pytest.mark.full_data
def test_sample_rows_get_the_same_votes_as_in_the_full_file(ferplus_sample_csv, full_ferplus):
    sample = ferplus_votes(ferplus_sample_csv)
    rows = pd.read_csv(ferplus_sample_csv)["row"]
    full = pd.read_csv(full_ferplus)
    full.insert(0, "row", np.arange(len(full)))  # the file's line position is the FER2013 row
    full = ferplus_votes(full.iloc[rows])
    key = ["image", "annotator"]
    assert (
        sample.sort_values(key)
        .reset_index(drop=True)
        .equals(full.sort_values(key).reset_index(drop=True))
    )
