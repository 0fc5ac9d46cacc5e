"""The panel (``--holdout all``): every annotator in turn, and a model against all of them.

A small study worked by hand, the Obuchowski-Rockette-Hillis test on a published worked
example (RJafroc's figures for a simulated reader study), the jackknife against plain
leave-one-out recomputation, and the panel of real FER+ votes recounted independently.
"""

import json
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluation import heldout_scoring, significance_tests
from evaluation.benchmark_core import build_benchmark_result, panel_block
from evaluation.report import format_report_text, panel_figure, render_report_html
from ferml.ferplus import ferplus_votes

from . import helpers
from .helpers import BIN3

# Three annotators, six images. c skipped x5. The model m answers every image.
#        a    b    c      others' majority when holding out a / b / c
#   x1  pos  pos  pos     pos / pos / pos
#   x2  neg  neg  neu     tie / tie / neg
#   x3  neu  pos  pos     pos / tie / tie
#   x4  neg  neu  pos     tie / tie / tie
#   x5  pos  pos   -      pos / pos / (c did not label it)
#   x6  neu  neu  neu     neu / neu / neu
HAND_VOTES = [
    ("x1", "a", "positive"), ("x1", "b", "positive"), ("x1", "c", "positive"),
    ("x2", "a", "negative"), ("x2", "b", "negative"), ("x2", "c", "neutral"),
    ("x3", "a", "neutral"), ("x3", "b", "positive"), ("x3", "c", "positive"),
    ("x4", "a", "negative"), ("x4", "b", "neutral"), ("x4", "c", "positive"),
    ("x5", "a", "positive"), ("x5", "b", "positive"),
    ("x6", "a", "neutral"), ("x6", "b", "neutral"), ("x6", "c", "neutral"),
]
HAND_MODEL = {"x1": "positive", "x2": "negative", "x3": "neutral", "x4": "negative",
              "x5": "negative", "x6": "neutral"}


@pytest.fixture(scope="module")
def hand_panel():
    result = build_benchmark_result(
        HAND_VOTES, BIN3, holdout="all", model_predictions={"m": HAND_MODEL}, min_images=2
    )
    return result["panel"]


def test_the_per_annotator_figures_of_a_small_study_by_hand(hand_panel):
    # a: paired x1 x3 x5 x6 (x2, x4 tie); a right on x1 x5 x6, m right on x1 x6.
    # b: paired x1 x5 x6 (x2, x3, x4 tie); b right on all three, m on x1 x6.
    # c: paired x1 x2 x6 (x3, x4 tie; c skipped x5); c right on x1 x6, m on all three.
    by_name = {a["annotator"]: a for a in hand_panel["annotators"]}
    assert [(a["n_images"], a["n_excluded_ties"], a["accuracy"], a["models"]["m"])
            for a in (by_name["a"], by_name["b"], by_name["c"])] == [
        (4, 2, 3 / 4, 2 / 4), (3, 3, 1.0, pytest.approx(2 / 3)), (3, 2, pytest.approx(2 / 3), 1.0)
    ]
    assert by_name["a"]["differences"]["m"] == -1 / 4
    assert by_name["b"]["differences"]["m"] == pytest.approx(-1 / 3)
    assert by_name["c"]["differences"]["m"] == pytest.approx(1 / 3)
    # one discordant image each (a: x5, b: x5, c: x2): exact McNemar p = 1
    assert {name: a["mcnemar_p"]["m"] for name, a in by_name.items()} == {"a": 1, "b": 1, "c": 1}
    assert all(a["included"] for a in hand_panel["annotators"])
    assert hand_panel["n_images"] == 5  # x4 is paired with nobody


def test_the_panel_means_difference_interval_and_p_by_hand(hand_panel):
    assert hand_panel["human_mean_accuracy"] == pytest.approx((3 / 4 + 1 + 2 / 3) / 3)  # 29/36
    [m] = hand_panel["models"]
    assert m["mean_accuracy"] == pytest.approx((2 / 4 + 2 / 3 + 1) / 3)  # 26/36
    assert m["difference"] == pytest.approx(-1 / 12)
    # model - human accuracy of each annotator with one image (x1 x2 x3 x5 x6) left out,
    # worked out by hand: (model right - its mark) / (n - 1) - (human right - its mark) / (n - 1)
    # where the image is the annotator's, the full difference where it is not.
    jackknife = np.array([
        [-1 / 3, -1 / 4, -1 / 3, 0, -1 / 3],  # a: n 4, human 3 right, model 2
        [-1 / 2, -1 / 3, -1 / 3, 0, -1 / 2],  # b: n 3, human 3, model 2
        [1 / 2, 0, 1 / 3, 1 / 3, 1 / 2],  # c: n 3, human 2, model 3
    ])
    differences = np.array([-1 / 4, -1 / 3, 1 / 3])
    n_images, n_annotators = 5, 3
    centred = jackknife - jackknife.mean(axis=1, keepdims=True)
    cov = (n_images - 1) / n_images * centred @ centred.T
    cov2 = (cov[0, 1] + cov[0, 2] + cov[1, 2]) / 3
    assert cov2 == pytest.approx(1 / 135)
    ms = differences.var(ddof=1)
    assert ms == pytest.approx(19 / 144)
    se = np.sqrt((ms + n_annotators * cov2) / n_annotators)
    df = (n_annotators - 1) * ((ms + n_annotators * cov2) / ms) ** 2
    t_crit = stats.t.ppf(0.975, df)
    assert m["df"] == pytest.approx(df)
    assert m["t"] == pytest.approx(-1 / 12 / se)
    assert m["p_value"] == pytest.approx(2 * stats.t.sf(1 / 12 / se, df))
    assert m["ci95"] == pytest.approx([-1 / 12 - t_crit * se, -1 / 12 + t_crit * se])
    assert (m["df"], m["p_value"]) == pytest.approx((2.7304, 0.73979), abs=1e-4)


def test_annotators_under_the_minimum_are_listed_but_left_out(hand_panel):
    result = build_benchmark_result(
        HAND_VOTES, BIN3, holdout="all", model_predictions={"m": HAND_MODEL}, min_images=4
    )
    panel = result["panel"]
    assert [(a["annotator"], a["included"]) for a in panel["annotators"]] == [
        ("a", True), ("b", False), ("c", False)
    ]
    assert panel["n_annotators_included"] == 1 and panel["n_images"] == 4
    assert panel["human_mean_accuracy"] == 3 / 4
    [m] = panel["models"]
    assert (m["mean_accuracy"], m["difference"]) == (2 / 4, -1 / 4)
    # one annotator is no panel: no interval, no p-value, and the report says why
    assert m["ci95"] == [None, None] and m["p_value"] is None
    json.dumps(result, allow_nan=False)
    text = format_report_text(result)
    assert "need at least 2 annotators" in text
    assert "2 annotator(s) with fewer than 4 paired images" in text


# --------------------------------------------------------------------------- the worked example


def simulated_reader_study(seed=1987, n_diseased=200, n_normal=800, n_readers=10, mu=1.0,
                           sigma_r=0.075, sigma_c=0.6):
    """The Roe-Metz single-modality simulation of Google Health's reader-study tests (one
    model and 10 readers; Chakraborty 2017, ch. 23), drawn in the same order from
    ``RandomState(seed)``: a case effect, then per reader two reader shifts and noise."""
    disease = np.r_[np.ones(n_diseased), np.zeros(n_normal)]
    rng = np.random.RandomState(seed)
    case = rng.randn(len(disease))
    model = mu * disease + case
    readers = []
    for _ in range(n_readers):
        shift_normal, shift_diseased = sigma_r * rng.randn(2)
        noise = np.sqrt(1 - sigma_c**2) * rng.randn(len(disease))
        readers.append(mu * disease + shift_normal * (1 - disease) + shift_diseased * disease
                       + sigma_c * case + noise)
    return disease.astype(bool), model, readers


def auc_with_jackknife(disease, score):
    """Empirical AUC (Mann-Whitney) and the AUC with each case left out."""
    diseased, normal = score[disease], score[~disease]
    n1, n0 = len(diseased), len(normal)
    below = np.searchsorted(np.sort(normal), diseased)  # normals under each diseased case
    above = n1 - np.searchsorted(np.sort(diseased), normal, side="right")
    pairs = below.sum()
    left_out = np.empty(len(score))
    left_out[disease] = (pairs - below) / ((n1 - 1) * n0)
    left_out[~disease] = (pairs - above) / (n1 * (n0 - 1))
    return pairs / (n1 * n0), left_out


def test_orh_matches_rjafroc_on_a_simulated_reader_study():
    # RJafroc's figures for this study, as published in Google Health's reader-study tests
    # (google-health/analysis/reader_study_test.py, testModelVsReadersORH; RJafroc
    # subtracts model from readers, the figures below are model - readers).
    disease, model, readers = simulated_reader_study()
    model_auc, model_jack = auc_with_jackknife(disease, model)
    reader_figures = [auc_with_jackknife(disease, r) for r in readers]
    differences = np.array([model_auc - auc for auc, _ in reader_figures])
    jackknife = np.array([model_jack - jack for _, jack in reader_figures])

    test = significance_tests.orh_model_vs_readers(differences, jackknife)

    assert test.difference == pytest.approx(-0.00584125, abs=1e-8)
    assert test.p_value == pytest.approx(0.6560453, abs=1e-7)
    assert test.ci == pytest.approx((-0.03233184, 0.02064934), abs=1e-8)
    assert test.df == pytest.approx(31.00905, abs=1e-5)
    assert (test.n_readers, test.n_cases) == (10, 1000)


def test_orh_needs_two_readers_and_some_spread():
    one = significance_tests.orh_model_vs_readers([0.1], np.full((1, 5), 0.1))
    assert one.difference == 0.1 and np.isnan(one.p_value) and np.isnan(one.ci[0])
    flat = significance_tests.orh_model_vs_readers([0.1, 0.1], np.full((2, 5), 0.1))
    assert flat.se == 0 and np.isnan(flat.p_value)
    with pytest.raises(ValueError, match="readers x cases"):
        significance_tests.orh_model_vs_readers([0.1, 0.2], np.zeros((3, 5)))
    with pytest.raises(ValueError, match="confidence"):
        significance_tests.orh_model_vs_readers([0.1, 0.2], np.zeros((2, 5)), confidence=95)


def test_accuracy_jackknife_is_plain_leave_one_out():
    rng = np.random.default_rng(7)
    paired = rng.random((4, 30)) < 0.7
    correct = rng.random((4, 30)) < 0.6
    accuracy, left_out = significance_tests.accuracy_jackknife(correct, paired)
    for j in range(4):
        assert accuracy[j] == correct[j][paired[j]].mean()
        for k in range(30):
            keep = paired[j] & (np.arange(30) != k)
            assert left_out[j, k] == pytest.approx(correct[j][keep].mean())
    with pytest.raises(ValueError, match="at least two"):
        significance_tests.accuracy_jackknife([[True, False]], [[True, False]])


# --------------------------------------------------------------------------- real votes


@pytest.fixture(scope="module")
def votes(ferplus_sample_csv):
    return ferplus_votes(ferplus_sample_csv)


def test_the_panel_of_real_votes_matches_an_independent_recount(votes):
    images = sorted(votes["image"].unique())
    rng = np.random.default_rng(3)
    guess = {image: BIN3[i] for image, i in zip(images, rng.integers(0, 3, len(images)))}
    result = build_benchmark_result(
        votes, BIN3, holdout="all", model_predictions={"guess": guess}, seed=1
    )
    json.dumps(result, allow_nan=False)
    panel = result["panel"]
    assert panel["reference"] == "majority" and panel["min_images"] == 20
    names = sorted(votes["annotator"].unique())
    assert [a["annotator"] for a in panel["annotators"]] == names
    union = set()
    for entry in panel["annotators"]:
        reference, human, ties = helpers.paired_set(votes, entry["annotator"])
        union |= set(reference)
        assert (entry["n_images"], entry["n_excluded_ties"]) == (len(reference), ties)
        assert entry["accuracy"] == pytest.approx(helpers.accuracy(human, reference))
        assert entry["models"]["guess"] == pytest.approx(helpers.accuracy(guess, reference))
        assert entry["mcnemar_p"]["guess"] == pytest.approx(
            helpers.mcnemar_p(human, guess, reference)
        )
    accuracies = [a["accuracy"] for a in panel["annotators"]]
    assert panel["human_mean_accuracy"] == pytest.approx(np.mean(accuracies))
    [model] = panel["models"]
    model_mean = np.mean([a["models"]["guess"] for a in panel["annotators"]])
    assert model["mean_accuracy"] == pytest.approx(model_mean)
    assert model["difference"] == pytest.approx(model_mean - np.mean(accuracies))
    assert model["ci95"][0] < model["difference"] < model["ci95"][1] < 0
    assert model["p_value"] < 1e-6  # a random guess is far below people
    assert panel["n_images"] == len(union)
    # the single held-out figures stay: the "auto" annotator, as without the panel
    assert result["holdout"]["annotator"] == helpers.median_annotator(votes)
    assert result["holdout"]["selection"] == "auto"


def test_the_panel_is_drawn_and_written_in_every_report(votes):
    images = votes["image"].unique()
    result = build_benchmark_result(
        votes, BIN3, holdout="all", n_resamples=100,
        model_predictions={"always_neutral": dict.fromkeys(images, "neutral")},
    )
    text = format_report_text(result)
    assert "Panel: 10 annotators, each held out in turn" in text
    assert "humans (mean of 10)" in text
    neutral = result["panel"]["models"][0]
    lo, hi = neutral["ci95"]
    line = next(x for x in text.splitlines() if x.strip().startswith("always_neutral")
                and f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" in x)
    assert f"{100 * neutral['mean_accuracy']:.1f} %" in line
    assert "Obuchowski-Rockette-Hillis" in text
    figure = panel_figure(result)
    assert len(figure.axes[0].get_yticklabels()) == 10
    page = render_report_html(result)
    assert page.count('src="data:image/png;base64,') == 5  # the forest plot too
    assert "Every annotator in turn: the panel of 10" in page
    assert panel_figure({**result, "panel": None}) is None


def test_models_must_answer_every_paired_image_of_every_annotator(votes):
    some = dict.fromkeys(sorted(votes["image"].unique())[:-1], "neutral")
    with pytest.raises(ValueError, match="model 'partial': no prediction for"):
        panel_block(heldout_scoring.panel_splits(votes, BIN3), {"partial": some})
    with pytest.raises(ValueError, match="2 or more"):
        build_benchmark_result(votes, BIN3, holdout="all", min_images=1)


@pytest.mark.full_data
@pytest.mark.slow
def test_the_panel_of_all_public_test_faces(full_fer2013, full_ferplus):
    faces = pd.read_csv(full_fer2013, usecols=["pixels", "Usage", "row"])
    first = faces[faces["Usage"] == "PublicTest"].drop_duplicates("pixels")["row"]
    votes = ferplus_votes(full_ferplus, "bin3", seed=11, usage="PublicTest",
                          image_key=helpers.IMAGE_KEY)
    votes = votes[votes["image"].isin({helpers.IMAGE_KEY.format(row=r) for r in first})]
    images = sorted(votes["image"].unique())
    rng = np.random.default_rng(0)
    reference_like = {}  # right about 70 % of the time against the plurality of all votes
    for image, labels in votes.groupby("image")["label"]:
        top = labels.value_counts().index[0]
        reference_like[image] = top if rng.random() < 0.7 else BIN3[rng.integers(0, 3)]

    started = time.perf_counter()
    result = build_benchmark_result(votes, BIN3, holdout="all",
                                    model_predictions={"m": reference_like})
    print(f"\npanel of {len(images)} images, 10 annotators: "
          f"{time.perf_counter() - started:.1f} s")
    json.dumps(result, allow_nan=False)
    panel = result["panel"]
    assert panel["n_annotators_included"] == 10 and panel["n_images"] > 3500
    for entry in panel["annotators"]:
        reference, human, ties = helpers.paired_set(votes, entry["annotator"])
        assert (entry["n_images"], entry["n_excluded_ties"]) == (len(reference), ties)
        assert entry["accuracy"] == pytest.approx(helpers.accuracy(human, reference))
        assert entry["models"]["m"] == pytest.approx(helpers.accuracy(reference_like, reference))
    [model] = panel["models"]
    lo, hi = model["ci95"]
    assert lo < model["difference"] < hi and hi - lo < 0.1


def test_every_split_of_the_panel_equals_holding_that_annotator_out_alone(votes):
    """The panel counts the votes once for every annotator: the same splits as one at a time."""
    rng = np.random.default_rng(3)
    partial = votes[rng.random(len(votes)) < 0.7]  # partial overlap, and some images alone
    splits = heldout_scoring.panel_splits(partial, BIN3)
    assert len(splits) == partial["annotator"].nunique()
    for name, split in splits.items():
        assert split == heldout_scoring.holdout_split(partial, BIN3, name), name
