"""The benchmark dict on real FER+ votes with two synthetic models, recomputed independently."""

import json
from collections import Counter

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from evaluation import agreement_stats
from evaluation.benchmark_core import build_benchmark_result
from ferml.ferplus import ferplus_votes

from .helpers import counted

BIN3 = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def votes(ferplus_sample_csv):
    return ferplus_votes(ferplus_sample_csv)


def plurality_of_all_votes(votes):
    """A strong 'model': the most frequent label among all 10 taggers, the held-out one
    included; a tie goes to the first label in BIN3 order (a model must answer)."""
    predictions = {}
    for image, labels in votes.groupby("image")["label"]:
        counts = Counter(labels)
        predictions[image] = max(BIN3, key=lambda lab: (counts[lab], -BIN3.index(lab)))
    return predictions


def paired_set(votes, holdout):
    """Images the holdout labelled where the others have a unique top label, recounted."""
    reference, human = {}, {}
    for image, group in votes.groupby("image"):
        mine = group.loc[group["annotator"] == holdout, "label"]
        if mine.empty:
            continue
        ranked = Counter(group.loc[group["annotator"] != holdout, "label"]).most_common()
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            continue
        reference[image], human[image] = ranked[0][0], mine.iloc[0]
    return reference, human


@pytest.fixture(scope="module")
def result(votes):
    models = {
        "plurality": plurality_of_all_votes(votes),
        "always_neutral": {image: "neutral" for image in votes["image"].unique()},
    }
    return build_benchmark_result(
        votes, BIN3, model_predictions=models, testset_name="ferplus-sample", seed=3
    )


def test_result_is_strict_json_with_the_promised_keys(result):
    again = json.loads(json.dumps(result, allow_nan=False))
    assert again == result
    assert set(result) >= {"testset", "labels", "agreement", "holdout", "models"}
    assert set(result["testset"]) >= {"name", "n_images", "n_annotators", "n_votes", "n_ties"}
    assert set(result["agreement"]) >= {
        "accuracy",
        "loo_accuracy",
        "fleiss_kappa",
        "krippendorff_alpha",
    }
    assert set(result["holdout"]) >= {"annotator", "n_images", "accuracy", "ci95", "confusion"}
    for model in result["models"]:
        assert set(model) >= {"name", "n_images", "accuracy", "ci95", "mcnemar_p", "confusion"}
    assert result["labels"] == BIN3
    assert [m["name"] for m in result["models"]] == ["plurality", "always_neutral"]


def test_testset_and_agreement_figures(result, votes):
    counts = votes.groupby("image")["label"].value_counts().unstack(fill_value=0)
    tops = counts.to_numpy()
    n_ties = int(sum((row == row.max()).sum() > 1 for row in tops))
    assert result["testset"] == {
        "name": "ferplus-sample",
        "n_images": len(counts),
        "n_annotators": 10,
        "n_votes": len(votes),
        "n_ties": n_ties,
    }
    decided = np.array([(row == row.max()).sum() == 1 for row in tops])
    agreement = result["agreement"]
    assert agreement["accuracy"] == pytest.approx(
        tops[decided].max(axis=1).sum() / tops[decided].sum()
    )
    assert agreement["n_votes_excluded_ties"] == tops[~decided].sum()
    assert agreement["loo_accuracy"] == pytest.approx(counted(agreement_stats.loo_agreement_from_counts, votes, BIN3).accuracy)
    assert agreement["fleiss_kappa"] == pytest.approx(
        0.592516794907, abs=1e-11
    )  # irrCAC, see test_ferplus
    assert agreement["krippendorff_alpha"] == pytest.approx(0.598201491133, abs=1e-11)
    per_annotator = {row["annotator"]: row for row in agreement["per_annotator"]}
    assert sorted(per_annotator) == [f"a{i:02d}" for i in range(1, 11)]
    assert sum(row["n_votes"] for row in per_annotator.values()) == len(votes)
    assert len(agreement["pairwise_cohens_kappa"]) == 45


def test_holdout_is_the_median_annotator_scored_on_the_recounted_paired_set(result, votes):
    holdout = result["holdout"]
    assert holdout["selection"] == "auto"
    per_annotator = sorted(
        (row["loo_accuracy"], row["annotator"]) for row in result["agreement"]["per_annotator"]
    )
    assert holdout["annotator"] == per_annotator[4][1]  # lower median of 10
    reference, human = paired_set(votes, holdout["annotator"])
    assert holdout["n_images"] == len(reference)
    assert holdout["n_correct"] == sum(human[img] == ref for img, ref in reference.items())
    assert holdout["accuracy"] == pytest.approx(holdout["n_correct"] / len(reference))
    lo, hi = holdout["ci95"]
    assert lo < holdout["accuracy"] < hi
    counts = np.array(holdout["confusion_counts"])
    assert counts.sum(axis=1).tolist() == [
        sum(r == lab for r in reference.values()) for lab in BIN3
    ]
    assert np.array(holdout["confusion"]) == pytest.approx(
        counts / counts.sum(axis=1, keepdims=True)
    )


def test_models_are_scored_on_the_same_images_with_mcnemar_against_the_human(result, votes):
    holdout = result["holdout"]
    reference, human = paired_set(votes, holdout["annotator"])
    images = sorted(reference)
    human_correct = np.array([human[img] == reference[img] for img in images])
    predictions = {
        "plurality": plurality_of_all_votes(votes),
        "always_neutral": dict.fromkeys(images, "neutral"),
    }
    for model in result["models"]:
        assert model["n_images"] == holdout["n_images"] == len(images)
        correct = np.array([predictions[model["name"]][img] == reference[img] for img in images])
        assert model["n_correct"] == correct.sum()
        assert model["accuracy"] == pytest.approx(correct.mean())
        assert model["diff_vs_human"] == pytest.approx(correct.mean() - human_correct.mean())
        table = [
            [int((human_correct & correct).sum()), int((human_correct & ~correct).sum())],
            [int((~human_correct & correct).sum()), int((~human_correct & ~correct).sum())],
        ]
        assert model["mcnemar_only_human"] == table[0][1]
        assert model["mcnemar_only_model"] == table[1][0]
        assert model["mcnemar_p"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
        lo, hi = model["ci95"]
        assert lo <= model["accuracy"] <= hi
        d_lo, d_hi = model["diff_vs_human_ci95"]
        assert d_lo <= model["diff_vs_human"] <= d_hi

    plurality, neutral = result["models"]
    # The plurality of all ten votes contains the others' majority almost always.
    assert plurality["accuracy"] > 0.95 and plurality["accuracy"] > holdout["accuracy"]
    assert plurality["mcnemar_p"] < 1e-6
    # Always neutral: right exactly on the neutral reference images; confusion rows [0, 1, 0].
    assert neutral["accuracy"] == pytest.approx(
        sum(r == "neutral" for r in reference.values()) / len(images)
    )
    assert neutral["confusion"] == [[0.0, 1.0, 0.0]] * 3
    assert neutral["mcnemar_p"] < 1e-6 and neutral["diff_vs_human"] < 0


def test_seed_makes_intervals_reproducible(votes, result):
    models = {"plurality": plurality_of_all_votes(votes)}
    first = build_benchmark_result(votes, BIN3, model_predictions=models, seed=3, n_resamples=500)
    assert first == build_benchmark_result(
        votes, BIN3, model_predictions=models, seed=3, n_resamples=500
    )
    assert first["bootstrap"] == {
        "method": "percentile",
        "n_resamples": 500,
        "confidence": 0.95,
        "seed": 3,
    }
    assert result["bootstrap"]["n_resamples"] == 2000


def test_a_named_holdout_and_no_models(votes):
    result = build_benchmark_result(votes, BIN3, holdout="a07")
    assert result["holdout"]["annotator"] == "a07"
    assert result["holdout"]["selection"] == "given"
    assert result["holdout"]["n_images"] == len(paired_set(votes, "a07")[0])
    assert result["models"] == []


def test_clear_errors(votes):
    with pytest.raises(ValueError, match="'nobody' has no votes"):
        build_benchmark_result(votes, BIN3, holdout="nobody")
    with pytest.raises(ValueError, match="model 'partial': no prediction for"):
        build_benchmark_result(votes, BIN3, model_predictions={"partial": {"row-00276": "neutral"}})
    lonely = [("i1", "a", "positive"), ("i2", "b", "negative")]
    with pytest.raises(ValueError, match="no annotator can be held out"):
        build_benchmark_result(lonely, BIN3)
    with pytest.raises(ValueError, match="shares no image"):
        build_benchmark_result(lonely, BIN3, holdout="a")


def test_a_thesis_sized_study_by_hand():
    # 3 images, annotators h, a, b, c. Others' majority: x pos, y neg, z tie (left out).
    votes = [
        ("x", "h", "positive"),
        ("x", "a", "positive"),
        ("x", "b", "positive"),
        ("x", "c", "neutral"),
        ("y", "h", "neutral"),
        ("y", "a", "negative"),
        ("y", "b", "negative"),
        ("y", "c", "negative"),
        ("z", "h", "neutral"),
        ("z", "a", "negative"),
        ("z", "b", "positive"),
        ("z", "c", "neutral"),
    ]
    result = build_benchmark_result(
        votes, BIN3, holdout="h", model_predictions={"m": {"x": "positive", "y": "negative"}}
    )
    assert result["holdout"]["n_images"] == 2 and result["holdout"]["n_excluded_ties"] == 1
    assert result["holdout"]["accuracy"] == 0.5  # right on x, wrong on y
    model = result["models"][0]
    assert model["accuracy"] == 1.0
    assert (model["mcnemar_only_human"], model["mcnemar_only_model"]) == (0, 1)
    assert model["mcnemar_p"] == 1.0  # one discordant image: 2 * P(X <= 0 | n=1) capped at 1
    # Confusion rows are reference labels; the neutral row has no image and stays undefined.
    assert result["holdout"]["confusion_counts"] == [[0, 1, 0], [0, 0, 0], [0, 0, 1]]
    assert result["holdout"]["confusion"] == [[0.0, 1.0, 0.0], [None, None, None], [0.0, 0.0, 1.0]]
    # Over all four annotators z is neutral 2, negative 1, positive 1: no tie. Thesis
    # agreement: x 3 of 4 votes on the majority, y 3 of 4, z 2 of 4.
    assert result["testset"]["n_ties"] == 0
    assert result["agreement"]["accuracy"] == pytest.approx((3 + 3 + 2) / 12)
