"""A model that ran elsewhere, as a prediction file: scored beside the others with an
accuracy and a McNemar p worked from its construction, and every bad file refused with
its rows named and nothing scored."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluation import heldout_scoring, services
from evaluation.services import BenchmarkError

from .helpers import BIN3
from .test_benchmark_command import command_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def paired(study):
    frame = services.testset_votes("study")
    return heldout_scoring.holdout_split(frame, BIN3, "a03")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_label_file_is_scored_as_a_model(study, paired, tmp_path):
    # right on every other paired image, wrong (the next label round) on the rest
    answers = {image: ref if n % 2 == 0 else BIN3[(BIN3.index(ref) + 1) % 3]
               for n, (image, ref) in enumerate(zip(paired.images, paired.reference))}
    path = write(tmp_path, "api.csv", "image,label\n" + "".join(f"{k},{v.upper()}\n" for k, v in answers.items()))
    result = services.run_benchmark("study", [], holdout="a03", prediction_files=[("vendor-api", path)])
    model = result["models"][0]
    n = len(paired.images)
    assert (model["name"], model["n_images"], model["n_correct"]) == ("vendor-api", n, (n + 1) // 2)
    assert (model["checkpoint"], model["architecture"]) == ("api.csv", "predictions from a file")
    human = np.array(paired.human) == np.array(paired.reference)
    model_right = np.arange(n) % 2 == 0
    b, c = int((human & ~model_right).sum()), int((~human & model_right).sum())
    assert model["mcnemar_p"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue)


def test_probabilities_in_emotions_are_binned_to_the_labels_scored(study, paired, tmp_path):
    # 60 % happy, 40 % sad: binned, positive; 0.3 angry + 0.3 fear + 0.4 neutral: negative
    rows = "".join(f"{k},0.6,0,0,0.4,0,0,0,0\n" if n % 2 else f"{k},0,0.4,0,0,0.3,0,0.3,0\n"
                   for n, k in enumerate(sorted(set(services.testset_votes("study")["image"]))))
    path = write(tmp_path, "probs.csv", "image,happiness,neutral,surprise,sadness,fear,disgust,anger,contempt\n" + rows)
    result = services.run_benchmark("study", [], holdout="a03", prediction_files=[("emotions", path)])
    entry = result["models"][0]
    assert entry["training_label_set"].startswith("probabilities: happy, neutral, surprise, sad")
    predicted = {0: "negative", 1: "positive"}
    expected = sum(ref == predicted[sorted(set(services.testset_votes("study")["image"])).index(img) % 2]
                   for img, ref in zip(paired.images, paired.reference))
    assert entry["n_correct"] == expected


@pytest.mark.parametrize("text, problem", [
    ("picture,label\n", "the first line must be image,label"),
    ("image,label\nnowhere.png,positive\n", "row 2: image 'nowhere.png' is not in the test set"),
    ("image,label\n{k},smiling\n", "row 2: label 'smiling' cannot be scored (use negative, neutral, positive)"),
    ("image,happy,sad\n{k},0.7,0.7\n", "row 2: the probabilities sum to 1.4000, not 1"),
    ("image,happy,sad\n{k},x,0.5\n", "row 2: a probability is not a number"),
    ("image,happy,sad\n{k},1.5,-0.5\n", "row 2: a probability is outside 0 to 1"),
    ("image,label\n{k},positive\n{k},positive\n", "row 3: image '{k}' is given a second time"),
    ("image,cat,dog\n{k},0.5,0.5\n", "its classes (cat, dog) cannot be scored"),
    ("image,label\n{k},positive\n", "image(s) the benchmark scores have no row"),
])
def test_a_bad_file_is_refused_with_its_row_and_nothing_scored(study, tmp_path, text, problem):
    key = sorted(set(services.testset_votes("study")["image"]))[0]
    path = write(tmp_path, "bad.csv", text.format(k=key))
    with pytest.raises(BenchmarkError) as refused:
        services.run_benchmark("study", [], holdout="a03", prediction_files=[("bad", path)])
    assert "bad.csv" in str(refused.value) and problem.format(k=key) in str(refused.value)


def test_the_command_takes_name_equals_file(study, paired, tmp_path):
    from .helpers import run_command

    path = write(tmp_path, "ref.csv", "image,label\n" + "".join(f"{k},{v}\n" for k, v in
                                                               zip(paired.images, paired.reference)))
    out = run_command("benchmark", "--holdout", "a03", "--predictions", f"oracle={path}")
    assert "oracle is " in out and "100.0 %" in out
    assert command_error("--predictions", "oracle") == "--predictions 'oracle': write it as NAME=FILE.csv."
