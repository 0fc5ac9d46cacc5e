"""The Dawid-Skene reference (``--reference dawid-skene``) against crowd-kit's implementation.

crowd-kit (Toloka's ``crowdkit.aggregation.DawidSkene``) is the well-known open
implementation; it is a test dependency only. It starts from the vote shares, as
``truth_inference.dawid_skene`` does, and keeps probabilities off zero by clipping at 1e-10 where
``truth_inference.dawid_skene`` adds ``smoothing`` to every count, so with a tiny smoothing and the
same number of EM steps the two must agree to rounding.
"""

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene

from evaluation import heldout_scoring, truth_inference
from evaluation.benchmark_core import build_benchmark_result
from evaluation.report import format_report_text
from ferml.ferplus import ferplus_votes

from .helpers import BIN3


@pytest.fixture(scope="module")
def votes(ferplus_sample_csv):
    return ferplus_votes(ferplus_sample_csv)


def crowd_kit(votes: pd.DataFrame, **options) -> DawidSkene:
    return DawidSkene(**options).fit(votes.rename(columns={"image": "task", "annotator": "worker"}))


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_dawid_skene_is_crowd_kits_step_for_step_on_real_votes(votes, steps):
    reference = crowd_kit(votes, n_iter=steps, tol=-np.inf)  # exactly ``steps`` EM steps
    ours = truth_inference.dawid_skene(votes, BIN3, max_iterations=steps, tolerance=0, smoothing=1e-10)
    assert ours.n_iterations == steps
    theirs = reference.probas_.reindex(index=ours.posteriors.index, columns=BIN3)
    np.testing.assert_allclose(ours.posteriors.to_numpy(), theirs.to_numpy(), atol=1e-8)


# crowd-kit's own default stops once the evidence bound gains less than 1e-5 per vote
# (3 steps on these votes), before the posteriors settle; both are run to convergence here.
CONVERGED = {"n_iter": 100, "tol": -np.inf}


def test_with_its_defaults_dawid_skene_labels_every_image_as_crowd_kit_does(votes):
    ours = truth_inference.dawid_skene(votes, BIN3)
    theirs = crowd_kit(votes, **CONVERGED).labels_
    assert ours.converged and ours.tied == []
    assert ours.labels == theirs.to_dict()


def test_the_reference_of_a_held_out_annotator_is_crowd_kits_on_the_others_votes(votes):
    split = heldout_scoring.holdout_split(votes, BIN3, "a03", heldout_scoring.DAWID_SKENE)
    others = crowd_kit(votes[votes["annotator"] != "a03"], **CONVERGED).labels_
    own = set(votes.loc[votes["annotator"] == "a03", "image"])
    assert split.images == sorted(own & set(others.index))
    assert split.reference == [others[image] for image in split.images]
    assert split.tied == [] and split.unreferenced == sorted(own - set(others.index))
    mine = votes[votes["annotator"] == "a03"].set_index("image")["label"]
    assert split.human == [mine[image] for image in split.images]


def test_a_dawid_skene_reference_weights_a_reliable_annotator_over_two_careless_ones():
    # h is held out. r agrees with the crowd everywhere; c1 and c2 always say "negative".
    # On q the others' votes are r: positive, c1 and c2: negative. The majority says
    # negative; Dawid-Skene has learnt that c1 and c2 say negative whatever the face is.
    votes = []
    for k in range(30):
        truth = BIN3[k % 3]
        votes += [(f"i{k:02d}", "r", truth), (f"i{k:02d}", "h", truth),
                  (f"i{k:02d}", "s", truth), (f"i{k:02d}", "c1", "negative"),
                  (f"i{k:02d}", "c2", "negative")]
    votes += [("q", "h", "positive"), ("q", "r", "positive"), ("q", "c1", "negative"),
              ("q", "c2", "negative")]
    majority = heldout_scoring.holdout_split(votes, BIN3, "h", heldout_scoring.MAJORITY)
    weighted = heldout_scoring.holdout_split(votes, BIN3, "h", heldout_scoring.DAWID_SKENE)
    assert dict(zip(majority.images, majority.reference))["q"] == "negative"
    assert dict(zip(weighted.images, weighted.reference))["q"] == "positive"


def test_the_report_says_which_reference_it_used(votes):
    images = votes["image"].unique()
    models = {"always_neutral": dict.fromkeys(images, "neutral")}
    result = build_benchmark_result(
        votes, BIN3, holdout="all", model_predictions=models, reference=heldout_scoring.DAWID_SKENE,
        n_resamples=100,
    )
    assert result["reference"] == result["panel"]["reference"] == "dawid-skene"
    text = format_report_text(result)
    assert "reference = the Dawid-Skene estimate from the other annotators' votes" in text
    majority = build_benchmark_result(votes, BIN3, holdout="all", model_predictions=models,
                                      n_resamples=100)
    assert "reference = the majority of the other annotators" in format_report_text(majority)
    # Dawid-Skene leaves fewer images out as ties than the majority of the others does
    ties = [sum(a["n_excluded_ties"] for a in r["panel"]["annotators"]) for r in (result, majority)]
    assert ties[0] < ties[1]
    with pytest.raises(ValueError, match="unknown reference 'mode'"):
        build_benchmark_result(votes, BIN3, reference="mode")
