"""Agreement and held-out metrics: hand-worked examples, reference libraries, edge cases."""

import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from annotator.majority import image_majority
from evaluation import (
    agreement_stats,
    heldout_scoring,
    significance_tests,
    truth_inference,
    vote_tables,
)
from ferml.ferplus import ferplus_votes

from .helpers import counted

NNP = ["neg", "neu", "pos"]

# Three images, three annotators. i1: pos pos neg (majority pos); i2: neg pos (tie);
# i3: neg neg neg (majority neg).
SMALL = [
    ("i1", "a", "pos"),
    ("i1", "b", "pos"),
    ("i1", "c", "neg"),
    ("i2", "a", "neg"),
    ("i2", "b", "pos"),
    ("i3", "a", "neg"),
    ("i3", "b", "neg"),
    ("i3", "c", "neg"),
]


def flips_study(n_flips: dict[str, int], n_images: int = 20) -> list[tuple]:
    """Every annotator labels every image with its truth, except that annotator k gives
    a wrong label on n_flips[k] images, each image wrong for at most one annotator.
    With >= 4 annotators the others' majority is then always the truth, so k's
    leave-one-out agreement is exactly (n_images - n_flips[k]) / n_images."""
    truth = [NNP[i % 3] for i in range(n_images)]
    wrong = {}
    start = 0
    for name, k in n_flips.items():
        for img in range(start, start + k):
            wrong[img] = name
        start += k
    assert start <= n_images
    return [
        (
            f"img{i:02d}",
            name,
            NNP[(NNP.index(truth[i]) + 1) % 3] if wrong.get(i) == name else truth[i],
        )
        for i in range(n_images)
        for name in n_flips
    ]


# --------------------------------------------------------------------------- votes


def test_votes_accept_triples_or_a_dataframe():
    frame = pd.DataFrame(SMALL, columns=["image", "annotator", "label"])
    assert vote_tables.vote_counts(SMALL, NNP).equals(vote_tables.vote_counts(frame, NNP))


def test_unknown_label_and_repeated_vote_are_refused():
    with pytest.raises(ValueError, match="'happy'"):
        vote_tables.as_votes([("i1", "a", "happy")], NNP)
    with pytest.raises(ValueError, match="'a' voted more than once on image 'i1'"):
        vote_tables.as_votes([("i1", "a", "pos"), ("i1", "a", "neg")], NNP)
    with pytest.raises(ValueError, match="repeats"):
        vote_tables.as_votes([], ["pos", "pos"])
    with pytest.raises(ValueError, match="annotator"):
        vote_tables.as_votes(pd.DataFrame({"image": [], "label": []}), NNP)


def test_vote_counts_per_image_in_label_order():
    counts = vote_tables.vote_counts(SMALL, NNP)
    assert list(counts.columns) == NNP
    assert counts.loc["i1"].tolist() == [1, 0, 2]
    assert counts.loc["i2"].tolist() == [1, 0, 1]
    assert counts.loc["i3"].tolist() == [3, 0, 0]


def test_vote_summary_counts_images_annotators_votes_ties():
    assert vote_tables.vote_summary(SMALL, NNP) == {
        "n_images": 3,
        "n_annotators": 3,
        "n_votes": 8,
        "n_ties": 1,
    }
    assert vote_tables.vote_summary([], NNP) == {
        "n_images": 0,
        "n_annotators": 0,
        "n_votes": 0,
        "n_ties": 0,
    }


# --------------------------------------------------------------------------- agreement


def test_thesis_agreement_counts_own_vote_and_skips_tied_images():
    # i1: 2 of 3 votes equal the majority; i3: 3 of 3; i2 tied: its 2 votes excluded.
    result = counted(agreement_stats.agreement_accuracy_from_counts, SMALL, NNP)
    assert (result.n_matching, result.n_compared, result.n_excluded) == (5, 6, 2)
    assert result.accuracy == pytest.approx(5 / 6)


def test_leave_one_out_agreement_by_hand():
    # i1: a (others b=pos, c=neg) tie -> excluded; b likewise; c (others pos, pos) -> pos != neg.
    # i2: a (other: b=pos) -> pos != neg; b (other: a=neg) -> neg != pos.
    # i3: each vote's others are neg, neg -> match, 3 times.
    result = counted(agreement_stats.loo_agreement_from_counts, SMALL, NNP)
    assert (result.n_matching, result.n_compared, result.n_excluded) == (3, 6, 2)
    assert result.accuracy == pytest.approx(0.5)
    by_annotator = agreement_stats.loo_agreement_by_annotator(SMALL, NNP)
    assert list(by_annotator) == ["a", "b", "c"]
    # a: i1 excluded, i2 miss, i3 match; b the same; c: i1 miss, i3 match.
    assert by_annotator["a"] == agreement_stats.Agreement(n_matching=1, n_compared=2, n_excluded=1)
    assert by_annotator["b"] == agreement_stats.Agreement(n_matching=1, n_compared=2, n_excluded=1)
    assert by_annotator["c"] == agreement_stats.Agreement(n_matching=1, n_compared=2, n_excluded=0)


def test_leave_one_out_is_below_the_thesis_form_that_counts_own_votes():
    # Three voters, 2-1 split on every image: the thesis form is 2/3, but the
    # minority voter always misses and the two majority voters see a tie.
    votes = [
        (f"i{k}", name, lab)
        for k in range(4)
        for name, lab in [("a", "pos"), ("b", "pos"), ("c", "neg")]
    ]
    assert counted(agreement_stats.agreement_accuracy_from_counts, votes, NNP).accuracy == pytest.approx(2 / 3)
    loo = counted(agreement_stats.loo_agreement_from_counts, votes, NNP)
    assert (loo.n_matching, loo.n_compared, loo.n_excluded) == (0, 4, 8)


def test_all_agree():
    votes = [(f"i{k}", name, NNP[k % 3]) for k in range(6) for name in "abcd"]
    assert counted(agreement_stats.agreement_accuracy_from_counts, votes, NNP).accuracy == 1.0
    assert counted(agreement_stats.loo_agreement_from_counts, votes, NNP).accuracy == 1.0


def test_one_annotator_has_no_leave_one_out_reference():
    votes = [("i1", "solo", "pos"), ("i2", "solo", "neg")]
    assert counted(agreement_stats.agreement_accuracy_from_counts, votes, NNP).accuracy == 1.0  # own vote is the majority
    loo = counted(agreement_stats.loo_agreement_from_counts, votes, NNP)
    assert (loo.n_compared, loo.n_excluded) == (0, 2)
    assert math.isnan(loo.accuracy)
    with pytest.raises(ValueError, match="no annotator can be held out"):
        agreement_stats.choose_holdout(votes, NNP)


def test_empty_votes():
    assert math.isnan(counted(agreement_stats.agreement_accuracy_from_counts, [], NNP).accuracy)
    assert math.isnan(counted(agreement_stats.loo_agreement_from_counts, [], NNP).accuracy)
    assert agreement_stats.loo_agreement_by_annotator([], NNP) == {}
    assert math.isnan(counted(agreement_stats.fleiss_kappa_from_counts, [], NNP))
    assert math.isnan(counted(agreement_stats.krippendorff_alpha_from_counts, [], NNP))


def test_flips_study_gives_the_designed_leave_one_out_figures():
    votes = flips_study({"a": 4, "b": 0, "c": 2, "d": 1, "e": 3})
    by_annotator = agreement_stats.loo_agreement_by_annotator(votes, NNP)
    assert {k: v.accuracy for k, v in by_annotator.items()} == pytest.approx(
        {"a": 16 / 20, "b": 20 / 20, "c": 18 / 20, "d": 19 / 20, "e": 17 / 20}
    )


# --------------------------------------------------------------------------- auto holdout


def test_auto_holdout_is_the_median_annotator():
    # Ascending agreement: a .80, e .85, c .90, d .95, b 1.0 -> median c.
    votes = flips_study({"a": 4, "b": 0, "c": 2, "d": 1, "e": 3})
    assert agreement_stats.choose_holdout(votes, NNP) == "c"


def test_auto_holdout_takes_the_lower_median_for_an_even_count():
    # a .80, c .90, d .95, b 1.0 -> middle pair c, d -> the lower (more deviant): c.
    votes = flips_study({"a": 4, "b": 0, "c": 2, "d": 1})
    assert agreement_stats.choose_holdout(votes, NNP) == "c"


def test_auto_holdout_breaks_equal_agreement_by_name_order():
    # a .80, then x and m both .90, then b 1.0; sorted (accuracy, name): a, m, x, b -> m.
    votes = flips_study({"x": 2, "a": 4, "b": 0, "m": 2})
    assert agreement_stats.choose_holdout(votes, NNP) == "m"
    renamed = flips_study({"x": 2, "a": 4, "b": 0, "c": 2})
    assert agreement_stats.choose_holdout(renamed, NNP) == "c"


def test_auto_holdout_skips_an_annotator_without_comparable_votes():
    votes = flips_study({"a": 4, "b": 0, "c": 2, "d": 1, "e": 3}) + [("alone", "z", "pos")]
    assert agreement_stats.loo_agreement_by_annotator(votes, NNP)["z"].n_compared == 0
    assert agreement_stats.choose_holdout(votes, NNP) == "c"


# --------------------------------------------------------------------------- held-out split


HELD = [
    # p1: others a, b say pos; h says pos.
    ("p1", "h", "pos"),
    ("p1", "a", "pos"),
    ("p1", "b", "pos"),
    # p2: others tie neg/pos -> left out.
    ("p2", "h", "neg"),
    ("p2", "a", "neg"),
    ("p2", "b", "pos"),
    # p3: others neu, neu, neg -> neu; h says neg.
    ("p3", "h", "neg"),
    ("p3", "a", "neu"),
    ("p3", "b", "neu"),
    ("p3", "c", "neg"),
    # p4: only h -> no reference, left out.
    ("p4", "h", "pos"),
    # p5: h did not label it -> not in the set at all.
    ("p5", "a", "neg"),
    ("p5", "b", "neg"),
    # p6: others neg; h neg.
    ("p6", "h", "neg"),
    ("p6", "c", "neg"),
]


def test_holdout_split_uses_only_the_remaining_annotators():
    split = heldout_scoring.holdout_split(HELD, NNP, "h")
    assert split.annotator == "h"
    assert split.images == ["p1", "p3", "p6"]
    assert split.reference == ["pos", "neu", "neg"]
    assert split.human == ["pos", "neg", "neg"]
    assert split.tied == ["p2"]
    assert split.unreferenced == ["p4"]
    human = split.score(split.human_predictions)
    assert human.correct.tolist() == [True, False, True]
    assert human.accuracy == pytest.approx(2 / 3)


def test_holdout_of_unknown_annotator_names_the_known_ones():
    with pytest.raises(ValueError, match="'nobody' has no votes; annotators: a, b, c, h"):
        heldout_scoring.holdout_split(HELD, NNP, "nobody")


def test_holdout_accuracy_equals_that_annotators_leave_one_out_agreement():
    votes = flips_study({"a": 4, "b": 0, "c": 2, "d": 1, "e": 3}) + HELD
    by_annotator = agreement_stats.loo_agreement_by_annotator(votes, NNP)
    for name, agreement in by_annotator.items():
        split = heldout_scoring.holdout_split(votes, NNP, name)
        assert split.score(split.human_predictions).accuracy == pytest.approx(
            agreement.accuracy, nan_ok=True
        )
        assert split.n_images == agreement.n_compared


# --------------------------------------------------------------------------- scoring


def test_score_predictions_accuracy_correctness_and_confusion():
    images = ["i1", "i2", "i3", "i4", "i5"]
    reference = ["neg", "neg", "pos", "pos", "pos"]
    predictions = {"i1": "neg", "i2": "pos", "i3": "pos", "i4": "neu", "i5": "pos", "other": "neg"}
    score = heldout_scoring.score_predictions(images, reference, predictions, NNP)
    assert score.n_images == 5 and score.n_correct == 3
    assert score.accuracy == pytest.approx(0.6)
    assert score.correct.tolist() == [True, False, True, False, True]
    # rows: reference neg, neu, pos; columns: predicted neg, neu, pos
    assert score.confusion_counts.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 2]]
    confusion = score.confusion
    assert confusion[0].tolist() == [0.5, 0.0, 0.5]
    assert np.isnan(confusion[1]).all()  # no neutral reference image: undefined, not zero
    assert confusion[2] == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_score_predictions_refuses_missing_or_foreign_predictions():
    with pytest.raises(ValueError, match="no prediction for 1 of 2 images"):
        heldout_scoring.score_predictions(["i1", "i2"], ["neg", "pos"], {"i1": "neg"}, NNP)
    with pytest.raises(ValueError, match="'happy'"):
        heldout_scoring.score_predictions(["i1"], ["neg"], {"i1": "happy"}, NNP)


def test_score_on_no_images_is_nan():
    score = heldout_scoring.score_predictions([], [], {}, NNP)
    assert score.n_images == 0 and math.isnan(score.accuracy)
    assert score.confusion_counts.sum() == 0


# --------------------------------------------------------------------------- Fleiss' kappa


def random_counts(rng, n_subjects, n_raters, n_categories, skew=(0.6, 0.3, 0.1)):
    p = np.asarray(skew[:n_categories]) / sum(skew[:n_categories])
    return np.array([rng.multinomial(n_raters, p) for _ in range(n_subjects)])


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_equals_statsmodels_with_equal_raters(seed):
    counts = random_counts(np.random.default_rng(seed), 60, 7, 3)
    assert agreement_stats.fleiss_kappa_from_counts(counts) == pytest.approx(
        sm_fleiss_kappa(counts), abs=1e-12
    )


def test_fleiss_kappa_of_votes_equals_statsmodels_fleiss_1971_table():
    # Fleiss (1971) style check on votes: 4 raters, 3 images.
    votes = [
        (img, f"r{k}", lab)
        for img, labs in [
            ("a", ["neg", "neg", "neg", "pos"]),
            ("b", ["neu", "neu", "pos", "pos"]),
            ("c", ["pos"] * 4),
        ]
        for k, lab in enumerate(labs)
    ]
    table = np.array([[3, 0, 1], [0, 2, 2], [0, 0, 4]])
    assert counted(agreement_stats.fleiss_kappa_from_counts, votes, NNP) == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_with_varying_raters_by_hand():
    # counts (neg, neu, pos) per subject and raters r:
    # s1 (3,1,0) r=4: agreeing pairs 3*2 = 6 of 4*3 = 12 -> 1/2
    # s2 (0,0,2) r=2: 2 of 2 -> 1
    # s3 (2,1,0) r=3: 2 of 6 -> 1/3
    # s4 (0,1,2) r=3: 2 of 6 -> 1/3
    # s5 (1,0,0) r=1: no pair, left out of the observed part
    # p_o = (1/2 + 1 + 1/3 + 1/3) / 4 = 13/24
    # pi = mean of shares over the 5 rated subjects:
    #   neg (3/4 + 0 + 2/3 + 0 + 1)/5 = 29/60, neu (1/4 + 0 + 1/3 + 1/3 + 0)/5 = 11/60,
    #   pos (0 + 1 + 0 + 2/3 + 0)/5 = 20/60
    # p_e = (29^2 + 11^2 + 20^2) / 3600 = 1362/3600
    counts = np.array([[3, 1, 0], [0, 0, 2], [2, 1, 0], [0, 1, 2], [1, 0, 0]])
    p_o, p_e = 13 / 24, 1362 / 3600
    expected = (p_o - p_e) / (1 - p_e)
    assert agreement_stats.fleiss_kappa_from_counts(counts) == pytest.approx(expected, abs=1e-12)
    # Gwet's irrCAC (Python package 0.4.4, CAC(...).fleiss()) gives 0.26273458445 on these ratings.
    assert expected == pytest.approx(0.26273458445, abs=1e-10)


def test_fleiss_kappa_ignores_empty_subjects_and_is_nan_when_undefined():
    counts = np.array([[3, 1, 0], [0, 0, 2], [0, 0, 0]])
    assert agreement_stats.fleiss_kappa_from_counts(counts) == agreement_stats.fleiss_kappa_from_counts(counts[:2])
    assert math.isnan(
        agreement_stats.fleiss_kappa_from_counts(np.array([[4, 0], [3, 0]]))
    )  # one category only
    assert math.isnan(
        agreement_stats.fleiss_kappa_from_counts(np.array([[1, 0], [0, 1]]))
    )  # nobody rated twice


def test_fleiss_kappa_perfect_and_systematic_disagreement():
    assert agreement_stats.fleiss_kappa_from_counts(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)
    # Every subject split 1-1 between two categories: p_o = 0, p_e = 1/2 -> kappa = -1.
    assert agreement_stats.fleiss_kappa_from_counts(np.array([[1, 1], [1, 1]])) == pytest.approx(-1.0)


# --------------------------------------------------------------------------- Krippendorff's alpha


def reliability_matrix(votes, labels):
    """annotators x images matrix of label codes, NaN for a missing vote (krippendorff's input)."""
    frame = vote_tables.as_votes(votes, labels)
    table = frame.pivot(index="annotator", columns="image", values="label")
    return table.apply(lambda col: col.map({lab: i for i, lab in enumerate(labels)})).to_numpy(
        dtype=float
    )


def test_krippendorff_alpha_by_hand():
    # units: u1 (a, a), u2 (a, b), u3 (b, b, b)
    # D_o = sum_u (m_u^2 - sum_c n_uc^2) / (m_u - 1) = 0 + (4 - 2)/1 + 0 = 2
    # n_a = 3, n_b = 4, n = 7; D_e = n^2 - sum n_c^2 = 49 - 9 - 16 = 24
    # alpha = 1 - (n - 1) * D_o / D_e = 1 - 6 * 2 / 24 = 0.5
    counts = np.array([[2, 0], [1, 1], [0, 3]])
    assert agreement_stats.krippendorff_alpha_from_counts(counts) == pytest.approx(0.5)
    value_counts = counts.astype(float)
    assert krippendorff.alpha(
        value_counts=value_counts, level_of_measurement="nominal"
    ) == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_votes(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, size=40)
    votes = []
    for img, t in enumerate(truth):
        for name in ["a", "b", "c", "d", "e"]:
            if rng.random() < 0.3:  # skipped image: a varying number of votes
                continue
            label = t if rng.random() < 0.7 else rng.integers(0, 3)
            votes.append((f"i{img}", name, NNP[label]))
    expected = krippendorff.alpha(reliability_matrix(votes, NNP), level_of_measurement="nominal")
    assert counted(agreement_stats.krippendorff_alpha_from_counts, votes, NNP) == pytest.approx(expected, abs=1e-12)


def test_krippendorff_alpha_drops_units_with_one_value_and_is_nan_without_variation():
    counts = np.array([[2, 0], [1, 1], [0, 3], [1, 0], [0, 0]])
    assert agreement_stats.krippendorff_alpha_from_counts(counts) == pytest.approx(0.5)
    assert math.isnan(agreement_stats.krippendorff_alpha_from_counts(np.array([[2, 0], [3, 0]])))
    assert math.isnan(agreement_stats.krippendorff_alpha_from_counts(np.array([[1, 0], [0, 1]])))


# --------------------------------------------------------------------------- Cohen's kappa


@pytest.mark.parametrize("seed", range(5))
def test_cohens_kappa_equals_statsmodels(seed):
    table = np.random.default_rng(seed).integers(0, 15, size=(3, 3)) + np.diag([10, 10, 10])
    assert agreement_stats.cohens_kappa_from_table(table) == pytest.approx(
        sm_cohens_kappa(table).kappa, abs=1e-12
    )


def test_pairwise_cohens_kappa_covers_every_pair_once():
    pairs = agreement_stats.pairwise_cohens_kappa(HELD, NNP)
    assert [(p.a, p.b) for p in pairs] == [
        ("a", "b"),
        ("a", "c"),
        ("a", "h"),
        ("b", "c"),
        ("b", "h"),
        ("c", "h"),
    ]
    by_pair = {(p.a, p.b): p for p in pairs}
    assert by_pair[("a", "c")].n_images == 1  # only p3
    assert by_pair[("a", "h")].n_images == 3  # p1, p2, p3


def test_cohens_kappa_undefined_cases():
    assert math.isnan(agreement_stats.cohens_kappa_from_table(np.zeros((2, 2))))
    assert math.isnan(agreement_stats.cohens_kappa_from_table(np.array([[5, 0], [0, 0]])))  # one label only


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_is_seeded_and_brackets_the_accuracy():
    correct = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    lo, hi = significance_tests.bootstrap_ci(correct, seed=1)
    assert (lo, hi) == significance_tests.bootstrap_ci(correct, seed=1)
    assert lo < 0.8 < hi
    # Few resamples of many images: the interpolated quantiles show the draws differ.
    many = np.random.default_rng(0).random(1000) < 0.8
    assert significance_tests.bootstrap_ci(many, n_resamples=30, seed=1) != significance_tests.bootstrap_ci(
        many, n_resamples=30, seed=2
    )


def test_bootstrap_ci_matches_the_binomial_quantiles():
    # Resampling n 0/1 outcomes with replacement makes the resampled accuracy
    # Binomial(n, p_hat)/n, so the percentile interval tends to its 2.5 and 97.5 % quantiles.
    n, k = 400, 300
    correct = np.r_[np.ones(k, bool), np.zeros(n - k, bool)]
    lo, hi = significance_tests.bootstrap_ci(correct, n_resamples=20000, seed=0)
    assert lo == pytest.approx(binom.ppf(0.025, n, k / n) / n, abs=0.006)
    assert hi == pytest.approx(binom.ppf(0.975, n, k / n) / n, abs=0.006)


def test_bootstrap_ci_confidence_and_edges():
    correct = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    narrow = significance_tests.bootstrap_ci(correct, confidence=0.5)
    wide = significance_tests.bootstrap_ci(correct, confidence=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    assert significance_tests.bootstrap_ci(np.ones(10, bool)) == (1.0, 1.0)
    assert all(math.isnan(x) for x in significance_tests.bootstrap_ci([]))
    with pytest.raises(ValueError, match="confidence"):
        significance_tests.bootstrap_ci(correct, confidence=95)


def test_paired_bootstrap_keeps_images_paired():
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.8
    b = a.copy()
    b[:15] = False  # b is a minus 15 images (where a happened to be right or wrong)
    diff = a.mean() - b.mean()
    lo, hi = significance_tests.paired_bootstrap_ci(a, b, seed=0)
    assert lo <= diff <= hi
    assert lo >= 0  # b never beats a on any image, so no resample can favour b
    assert significance_tests.paired_bootstrap_ci(a, a) == (0.0, 0.0)
    # Far narrower than what the two separate intervals would suggest.
    a_lo, a_hi = significance_tests.bootstrap_ci(a, seed=0)
    assert hi - lo < (a_hi - a_lo) / 2
    with pytest.raises(ValueError, match="differ in length"):
        significance_tests.paired_bootstrap_ci(a, b[:-1])


def test_same_seed_resamples_the_same_images_for_human_and_model():
    # A model right exactly where the human is wrong has accuracy 1 - human on every
    # resample; its interval mirrors the human's only if both saw the same images.
    # Few resamples of many images keep the quantiles off the 1/n grid, so the
    # mirror cannot hold by coincidence (checked with another seed).
    human = np.random.default_rng(4).random(1000) < 0.8
    lo_h, hi_h = significance_tests.bootstrap_ci(human, n_resamples=37, seed=7)
    lo_m, hi_m = significance_tests.bootstrap_ci(~human, n_resamples=37, seed=7)
    assert (lo_m, hi_m) == pytest.approx((1 - hi_h, 1 - lo_h), abs=1e-12)
    other = significance_tests.bootstrap_ci(~human, n_resamples=37, seed=8)
    assert other != pytest.approx((1 - hi_h, 1 - lo_h), abs=1e-12)


# --------------------------------------------------------------------------- McNemar


def test_mcnemar_exact_by_hand():
    # human right / model wrong on 1 image, the reverse on 6, 5 concordant:
    # p = 2 * P(X <= 1), X ~ Binomial(7, 1/2) = 2 * (1 + 7) / 128 = 0.125
    human = [True] * 1 + [False] * 6 + [True] * 3 + [False] * 2
    model = [False] * 1 + [True] * 6 + [True] * 3 + [False] * 2
    result = significance_tests.mcnemar_exact(human, model)
    assert (result.only_a, result.only_b) == (1, 6)
    assert result.p_value == pytest.approx(0.125)


@pytest.mark.parametrize("seed", range(8))
def test_mcnemar_exact_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    a = rng.random(150) < 0.8
    b = np.where(rng.random(150) < 0.2, ~a, a)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    expected = mcnemar(table, exact=True).pvalue
    assert significance_tests.mcnemar_exact(a, b).p_value == pytest.approx(expected, rel=1e-12)


def test_mcnemar_without_discordant_images_is_one():
    assert significance_tests.mcnemar_exact([True, False], [True, False]).p_value == 1.0
    assert significance_tests.mcnemar_exact([], []).p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        significance_tests.mcnemar_exact([True], [True, False])


# --------------------------------------------------------------------------- Dawid-Skene


def biased_crowd(seed: int = 0, n_images: int = 400):
    """Three good annotators (about 90 % right, errors spread) and four poor ones that
    are right 35 % of the time and otherwise say "neg": a crowd whose majority is
    dragged towards "neg", which per-annotator confusion matrices can undo."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_images)
    votes = []
    for i, t in enumerate(truth):
        for name, accuracy in [("g1", 0.9), ("g2", 0.9), ("g3", 0.85)]:
            label = t if rng.random() < accuracy else rng.choice([x for x in range(3) if x != t])
            votes.append((f"i{i:03d}", name, NNP[label]))
        for name in ["p1", "p2", "p3", "p4"]:
            label = t if rng.random() < 0.35 else 0
            votes.append((f"i{i:03d}", name, NNP[label]))
    return votes, {f"i{i:03d}": NNP[t] for i, t in enumerate(truth)}


def majority_labels(votes, labels) -> SimpleNamespace:
    """The plain majority Dawid-Skene is compared with, image by image (``annotator.majority``):
    ``labels`` (image -> label) of the images with a majority, ``tied`` the others."""
    frame = vote_tables.as_votes(votes, labels)
    by_image = {image: image_majority(group, labels) for image, group in frame.groupby("image")["label"]}
    return SimpleNamespace(
        labels={image: m.label for image, m in by_image.items() if m.label is not None},
        tied=[image for image, m in by_image.items() if m.tie],
    )


def test_dawid_skene_undoes_a_biased_crowd_that_fools_the_majority():
    votes, truth = biased_crowd()
    ds = truth_inference.dawid_skene(votes, NNP)
    majority = majority_labels(votes, NNP)
    ds_accuracy = np.mean([ds.labels.get(img) == lab for img, lab in truth.items()])
    majority_accuracy = np.mean([majority.labels.get(img) == lab for img, lab in truth.items()])
    assert ds.converged
    assert ds_accuracy > 0.97
    assert ds_accuracy > majority_accuracy + 0.1
    # A poor annotator's estimated confusion (rows: true label): neg always "neg";
    # neu and pos right 35 % of the time, otherwise "neg".
    assert ds.confusions["p1"] == pytest.approx(
        np.array([[1.0, 0.0, 0.0], [0.65, 0.35, 0.0], [0.65, 0.0, 0.35]]), abs=0.08
    )
    assert np.diag(ds.confusions["g1"]).min() > 0.8
    assert ds.posteriors.sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert ds.priors == pytest.approx([1 / 3] * 3, abs=0.06)


def test_dawid_skene_returns_the_majority_when_everyone_agrees():
    votes = [(f"i{k}", name, NNP[k % 3]) for k in range(9) for name in "abc"]
    ds = truth_inference.dawid_skene(votes, NNP)
    assert ds.labels == majority_labels(votes, NNP).labels
    assert ds.tied == []


def test_dawid_skene_on_no_votes():
    ds = truth_inference.dawid_skene([], NNP)
    assert ds.labels == {} and ds.tied == [] and ds.converged


def test_dawid_skene_mostly_agrees_with_the_majority_on_real_votes(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    labels = ["negative", "neutral", "positive"]
    ds = truth_inference.dawid_skene(votes, labels)
    majority = majority_labels(votes, labels)
    assert ds.converged
    assert np.mean([ds.labels.get(img) == lab for img, lab in majority.labels.items()]) > 0.95
    assert set(ds.labels) | set(ds.tied) == set(majority.labels) | set(majority.tied)


def test_the_metrics_core_imports_neither_django_nor_torch():
    # Services and the command wrap these modules; they must stay usable without either.
    code = (
        "import sys; import evaluation.vote_tables, evaluation.agreement_stats, evaluation.heldout_scoring, "
        "evaluation.significance_tests, evaluation.truth_inference, ferml.ferplus, evaluation.benchmark_core, "
        "evaluation.report; print(sorted({'django', 'torch'} & set(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(vote_tables.__file__).resolve().parents[1],
        check=True,
    )
    assert done.stdout.strip() == "[]"
