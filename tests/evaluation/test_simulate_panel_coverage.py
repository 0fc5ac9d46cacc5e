"""Simulated studies (evaluation/simulation.py) and the coverage simulation of the panel test
(scripts/simulate_panel_coverage.py), on tiny designs."""

import math

import numpy as np

from evaluation.simulation import LABELS, Accuracy, Design, panel_replicate, simulate_study
from scripts.simulate_panel_coverage import run_design, summarise

TINY_CROWD = Design("crowd", n_annotators=8, n_images=60, votes_per_image=3)
TINY_CROSSED = Design("crossed", n_annotators=4, n_images=60, votes_per_image=None)


def test_crowd_study_has_the_requested_distinct_votes_per_image():
    study = simulate_study(np.random.default_rng(0), TINY_CROWD, Accuracy())
    per_image = study.votes.groupby("image")["annotator"]
    assert study.votes["image"].nunique() == TINY_CROWD.n_images
    assert (per_image.size() == 3).all()
    assert (per_image.nunique() == 3).all()
    assert set(study.votes["label"]) <= set(LABELS)
    assert set(study.predictions) == set(range(TINY_CROWD.n_images))


def test_crossed_study_gives_every_annotator_every_image():
    study = simulate_study(np.random.default_rng(1), TINY_CROSSED, Accuracy())
    assert len(study.votes) == 4 * 60
    assert (study.votes.groupby("annotator")["image"].nunique() == 60).all()


def test_accuracies_against_the_truth_match_the_model():
    # Large enough that each figure is within a few standard errors of its target.
    design = Design("crossed", n_annotators=12, n_images=4000, votes_per_image=None)
    accuracy = Accuracy(low=0.70, high=0.90, hard_share=0.2, hard_drop=0.3)
    study = simulate_study(np.random.default_rng(2), design, accuracy)
    votes = study.votes
    truth = np.array(LABELS, dtype=object)[study.truth[votes["image"].to_numpy()]]
    right = votes["label"].to_numpy() == truth
    hard = study.hard[votes["image"].to_numpy()]
    names = sorted(votes["annotator"].unique())
    p = study.annotator_accuracy
    assert 0.70 <= p.min() and p.max() <= 0.90
    assert abs(study.hard.mean() - 0.2) < 0.03
    for j, name in enumerate(names):
        mine = (votes["annotator"] == name).to_numpy()
        assert abs(right[mine & ~hard].mean() - p[j]) < 0.035
        assert abs(right[mine & hard].mean() - (p[j] - 0.3)) < 0.06
    # Wrong answers fall evenly on the two wrong labels.
    wrong_label = votes["label"].to_numpy()[~right]
    wrong_truth = truth[~right]
    upward = np.array(
        [LABELS.index(w) == (LABELS.index(t) + 1) % 3 for w, t in zip(wrong_label, wrong_truth)]
    )
    assert abs(upward.mean() - 0.5) < 0.03
    model = np.array([study.predictions[i] for i in range(design.n_images)], dtype=object)
    model_right = model == np.array(LABELS, dtype=object)[study.truth]
    assert abs(model_right[~study.hard].mean() - 0.80) < 0.03
    assert abs(model_right[study.hard].mean() - 0.50) < 0.06


def test_panel_replicate_gives_a_finite_difference_inside_its_interval():
    for design in (TINY_CROWD, TINY_CROSSED):
        study = simulate_study(np.random.default_rng(3), design, Accuracy(hard_share=0.2))
        result = panel_replicate(study, min_images=10)
        assert math.isfinite(result.difference)
        assert -1 <= result.difference <= 1
        assert result.lo <= result.difference <= result.hi
        assert result.width > 0
        assert 0 <= result.p_value <= 1


def test_replicates_are_reproducible_and_summarised():
    seeds = np.random.SeedSequence(7).spawn(3)
    first = run_design(seeds, TINY_CROWD, Accuracy(), min_images=10, workers=1)
    again = run_design(np.random.SeedSequence(7).spawn(3), TINY_CROWD, Accuracy(), 10, 1)
    assert first == again
    assert len({r.difference for r in first}) > 1  # each replicate draws a new study
    summary = summarise(first)
    assert summary["replicates"] == summary["valid"] == 3
    assert summary["coverage"] == np.mean([r.lo <= 0 <= r.hi for r in first])
    assert math.isclose(summary["rejection"], 1 - summary["coverage"])
    assert summary["mean_width"] > 0
