"""A study in emotions: votes in affect8 with extra answers, scored in affect8 and binned
to bin3 after they were cast, worked by hand; models mapped into the scheme or refused."""
from __future__ import annotations

import pytest

from annotator.image_import import import_testset
from annotator.testsets import check_label_scheme
from annotator.vote_import import import_votes
from evaluation.services import BenchmarkError, run_benchmark, scoring_choices
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.annotator.helpers import write_faces

pytestmark = pytest.mark.django_db

# image -> the votes of a1, a2, a3 (FER+ column spellings, as import_votes accepts them)
VOTES = {
    "fer00001.png": ["happiness", "happiness", "surprise"],
    "fer00002.png": ["sadness", "anger", "fear"],
    "fer00003.png": ["neutral", "surprise", "unknown"],
    "fer00004.png": ["contempt", "disgust", "happiness"],
}


@pytest.fixture
def emotions(tmp_path, fer_faces):  # noqa: F811
    folder = tmp_path / "faces"
    write_faces(folder, fer_faces[:4], subfolders=False)
    for old, new in zip(sorted(p.name for p in folder.iterdir()), VOTES):
        (folder / old).rename(folder / new)
    testset = import_testset(folder, name="emotions",
                             scheme=check_label_scheme("affect8", extra_answers=["unsure", "not-a-face"])).testset
    csv = tmp_path / "votes.csv"
    csv.write_text("image,annotator,label\n" + "".join(
        f"{image},a{n + 1},{label}\n" for image, labels in VOTES.items() for n, label in enumerate(labels)))
    import_votes(csv, testset=testset)
    return testset


def test_an_emotion_study_is_scored_in_its_scheme_and_in_the_bins_it_maps_into(emotions):
    assert scoring_choices(emotions) == ["affect8", "bin3", "pos2"]
    own = run_benchmark(emotions, [], holdout="a1")
    # affect8: only image 1 has a majority (happy 2 of 3); the other three tie
    assert own["labels"][:2] == ["neutral", "happy"] and own["testset"]["n_ties"] == 3
    assert own["agreement"]["accuracy"] == pytest.approx(2 / 3)
    assert own["testset"]["votes_binned"] is False and own["testset"]["binning"] is None
    assert own["testset"]["extra_answers"] == {"unsure": 1, "not-a-face": 0}

    binned = run_benchmark(emotions, [], holdout="a1", labels="bin3")
    # bin3: 1 positive (2 of 3), 2 negative (3 of 3), 3 neutral (2 of 2: "unknown" is in no
    # majority), 4 negative (2 of 3)
    assert binned["testset"]["n_ties"] == 0
    assert binned["agreement"]["accuracy"] == pytest.approx(9 / 11)
    assert binned["testset"]["binning"] == ("The votes were cast in affect8 and binned to bin3 after they "
                                            "were cast, as a 7- or 8-class model's probabilities are.")
    # a1 held out: 1 ties (positive vs neutral), 2 negative = sad, 3 neutral = neutral, 4 ties
    holdout = binned["holdout"]
    assert (holdout["n_images"], holdout["n_correct"], holdout["n_excluded_ties"]) == (2, 2, 2)
    # a3's "unknown" is no label: the labels' design is not fully crossed any more
    design = binned["design"]
    assert design["fully_crossed"] is False and design["mean_annotators_per_image"] == pytest.approx(11 / 4)
    assert (design["n_annotator_pairs"], design["n_pairs_sharing_images"]) == (3, 3)


def test_a_model_is_mapped_into_the_scheme_or_refused_with_a_sentence(emotions):
    with pytest.raises(BenchmarkError) as refused:
        run_benchmark(emotions, ["bkvgg12_ferplus"], holdout="a1")
    assert str(refused.value) == (
        "Model 'bkvgg12_ferplus' was trained on bin3 labels (negative, neutral, positive) and cannot be "
        "scored on affect8 (neutral, happy, sad, surprise, fear, disgust, angry, contempt).")
    with pytest.raises(BenchmarkError, match="which cannot be scored in 'fer7'; choose affect8, bin3 or pos2"):
        run_benchmark(emotions, [], labels="fer7")
    # dense121 answers in affect8: scored on emotions as it is, and binned to bin3
    own = run_benchmark(emotions, ["dense121"], holdout="a2")
    assert own["models"][0]["training_label_set"] == "affect8" and own["models"][0]["n_images"] == own["holdout"]["n_images"]
    binned = run_benchmark(emotions, ["dense121"], holdout="a2", labels="bin3")
    # a2 held out: image 1 ties (positive vs neutral), 2 and 3 pair, 4 ties (negative vs positive)
    assert binned["models"][0]["n_images"] == binned["holdout"]["n_images"] == 2
