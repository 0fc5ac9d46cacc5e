"""FER+ crowd votes as a study, and every agreement figure on them recomputed independently.

The recounts below start from the raw FER+ csv (pandas sums of its columns, plain
Python loops), not from the votes that ``ferplus_votes`` builds, so a mistake in the
conversion or in the metrics shows up as a mismatch.
"""

from collections import Counter, defaultdict

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from evaluation import metrics
from evaluation.ferplus import FERPLUS_EMOTIONS, ferplus_labels, ferplus_votes

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


def recount_majority(counts: pd.DataFrame):
    majority, tied = {}, []
    for image, row in zip(counts.index, counts[BIN3].to_dict("records")):
        top = max(row.values())
        winners = [label for label in BIN3 if row[label] == top]
        if len(winners) == 1:
            majority[image] = winners[0]
        else:
            tied.append(image)
    return majority, tied


def recount_loo(counts: pd.DataFrame):
    """(matching, compared, excluded) votes, each vote against the others' majority."""
    matching = compared = excluded = 0
    for row in counts[BIN3].to_dict("records"):
        for label in BIN3:
            if row[label] == 0:
                continue
            others = {lab: row[lab] - (lab == label) for lab in BIN3}
            top = max(others.values())
            winners = [lab for lab in BIN3 if others[lab] == top]
            if top == 0 or len(winners) > 1:
                excluded += row[label]
            else:
                compared += row[label]
                matching += row[label] * (winners[0] == label)
    return matching, compared, excluded


def recount_loo_by_annotator(votes: pd.DataFrame):
    by_image = defaultdict(list)
    for image, annotator, label in votes.itertuples(index=False):
        by_image[image].append((annotator, label))
    tally = defaultdict(lambda: [0, 0])  # annotator -> [matching, compared]
    for entries in by_image.values():
        for annotator, label in entries:
            others = Counter(lab for name, lab in entries if name != annotator)
            if not others:
                continue
            ranked = others.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue
            tally[annotator][1] += 1
            tally[annotator][0] += ranked[0][0] == label
    return {name: m / c for name, (m, c) in tally.items()}


def check_against_recount(votes: pd.DataFrame, counts: pd.DataFrame):
    """Every agreement figure of ``metrics`` on ``votes`` against the independent recount."""
    assert (
        metrics.vote_counts(votes, BIN3)
        .sort_index()
        .equals(counts.sort_index().astype(np.int64).rename_axis("image"))
    )

    majority, tied = recount_majority(counts)
    result = metrics.majority_labels(votes, BIN3)
    assert result.labels == majority
    assert sorted(result.tied) == sorted(tied)
    summary = metrics.vote_summary(votes, BIN3)
    assert summary == {
        "n_images": len(counts),
        "n_annotators": 10,
        "n_votes": int(counts.to_numpy().sum()),
        "n_ties": len(tied),
    }

    decided = counts.loc[list(majority)]
    thesis = metrics.agreement_accuracy(votes, BIN3)
    assert thesis.n_matching == decided.max(axis=1).sum()
    assert thesis.n_compared == decided.to_numpy().sum()
    assert thesis.n_excluded == counts.loc[tied].to_numpy().sum()

    loo = metrics.loo_agreement(votes, BIN3)
    assert (loo.n_matching, loo.n_compared, loo.n_excluded) == recount_loo(counts)
    assert loo.accuracy < thesis.accuracy  # own vote no longer counts

    by_annotator = metrics.loo_agreement_by_annotator(votes, BIN3)
    assert {k: v.accuracy for k, v in by_annotator.items()} == pytest.approx(
        recount_loo_by_annotator(votes)
    )

    # Fleiss' kappa: statsmodels on the images with all 10 votes (equal raters) ...
    full = counts[counts.sum(axis=1) == 10]
    full_votes = votes[votes["image"].isin(full.index)]
    assert metrics.fleiss_kappa(full_votes, BIN3) == pytest.approx(
        sm_fleiss_kappa(full.to_numpy()), abs=1e-12
    )

    # ... Krippendorff's alpha: the package on the counts and on the annotator x image matrix.
    alpha = metrics.krippendorff_alpha(votes, BIN3)
    assert alpha == pytest.approx(
        krippendorff.alpha(
            value_counts=counts.to_numpy(dtype=float), level_of_measurement="nominal"
        ),
        abs=1e-12,
    )
    codes = votes.assign(code=votes["label"].map(BIN3.index)).pivot(
        index="annotator", columns="image", values="code"
    )
    assert alpha == pytest.approx(
        krippendorff.alpha(codes.to_numpy(dtype=float), level_of_measurement="nominal"), abs=1e-12
    )

    # Cohen's kappa of every pair against statsmodels on the crosstab of shared images.
    table = votes.pivot(index="image", columns="annotator", values="label")
    for pair in metrics.pairwise_cohens_kappa(votes, BIN3):
        both = table[[pair.a, pair.b]].dropna()
        crosstab = pd.crosstab(both[pair.a], both[pair.b]).reindex(
            index=BIN3, columns=BIN3, fill_value=0
        )
        assert pair.n_images == len(both)
        assert pair.kappa == pytest.approx(sm_cohens_kappa(crosstab.to_numpy()).kappa, abs=1e-12)

    # The auto holdout: median of the recounted per-annotator figures, and its paired set.
    ranked = sorted((acc, name) for name, acc in recount_loo_by_annotator(votes).items())
    holdout = metrics.choose_holdout(votes, BIN3)
    assert holdout == ranked[(len(ranked) - 1) // 2][1]
    split = metrics.holdout_split(votes, BIN3, holdout)
    mine = votes[votes["annotator"] == holdout].set_index("image")["label"]
    rest = votes[votes["annotator"] != holdout].groupby("image")["label"].apply(list).to_dict()
    expected_images, expected_reference, n_tied = [], [], 0
    for image in sorted(mine.index):
        others = Counter(rest.get(image, [])).most_common()
        if not others:
            continue
        if len(others) > 1 and others[0][1] == others[1][1]:
            n_tied += 1
            continue
        expected_images.append(image)
        expected_reference.append(others[0][0])
    assert split.images == expected_images
    assert split.reference == expected_reference
    assert len(split.tied) == n_tied
    human = split.score(split.human_predictions)
    assert human.accuracy == pytest.approx(
        np.mean([mine[img] == ref for img, ref in zip(expected_images, expected_reference)])
    )
    assert human.accuracy == pytest.approx(by_annotator[holdout].accuracy)
    return split


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
    assert metrics.vote_counts(votes, BIN3).equals(metrics.vote_counts(other, BIN3))
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


# --------------------------------------------------------------------------- metrics on real votes


def test_metrics_on_the_committed_ferplus_sample(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    split = check_against_recount(votes, binned_counts(ferplus_sample_csv))
    assert split.n_images > 350
    # Fleiss' kappa and Krippendorff's alpha depend only on the per-image counts, so
    # these values of Gwet's irrCAC (Python 0.4.4, CAC(...).fleiss(), .krippendorff(),
    # varying votes per image) hold whatever the shuffle.
    assert metrics.fleiss_kappa(votes, BIN3) == pytest.approx(0.592516794907, abs=1e-11)
    assert metrics.krippendorff_alpha(votes, BIN3) == pytest.approx(0.598201491133, abs=1e-11)


@pytest.mark.full_data
def test_metrics_on_all_public_test_rows(full_ferplus):
    votes = ferplus_votes(full_ferplus, usage="PublicTest")
    counts = binned_counts(full_ferplus, usage="PublicTest")
    assert len(counts) == 3579  # 3,589 PublicTest rows, 10 of them without an expression vote
    split = check_against_recount(votes, counts)
    assert split.n_images > 3300  # the held-out tagger has no vote on ~4 % of images (unknown, NF)
    assert metrics.fleiss_kappa(votes, BIN3) == pytest.approx(0.618547284956, abs=1e-11)
    assert metrics.krippendorff_alpha(votes, BIN3) == pytest.approx(0.626794375263, abs=1e-11)
    # The crowd's agreement in the thesis' sense lands near the thesis' own 85 %.
    assert metrics.agreement_accuracy(votes, BIN3).accuracy == pytest.approx(0.858, abs=0.001)
