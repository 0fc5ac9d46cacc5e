"""evaluation.services: votes from the database, batched model runs, agreement summary."""

from pathlib import Path

import numpy as np
import pytest
import torch

from annotator import models as stored
from evaluation import services
from evaluation.services import BenchmarkError
from ferml.inference import Predictor

from . import helpers
from .helpers import BIN3, read_gray, run_command, write_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(tmp_path, fer_sample_csv, ferplus_sample_csv):
    study = write_study(tmp_path / "study", fer_sample_csv, ferplus_sample_csv, seed=3, limit=60)
    run_command("import_testset", str(study.images), "--name", "study")
    run_command("import_votes", str(study.votes_csv), "--testset", "study")
    study.testset = stored.TestSet.objects.get(name="study")
    return study


def test_votes_come_back_as_stored(study):
    frame = services.testset_votes(study.testset)
    assert list(frame.columns) == ["image", "annotator", "label"]
    key = ["image", "annotator"]
    from_db = frame.sort_values(key).reset_index(drop=True)
    expected = study.votes.sort_values(key).reset_index(drop=True)
    assert from_db.equals(expected)


def test_pos2_votes_merge_negative_and_neutral(study):
    frame = services.testset_votes(study.testset, "pos2")
    bin3 = services.testset_votes(study.testset)
    assert set(frame["label"]) == {"non-positive", "positive"}
    assert ((frame["label"] == "positive") == (bin3["label"] == "positive")).all()


def test_unknown_label_set():
    with pytest.raises(BenchmarkError, match="Unknown label set 'fer9'; choose one of fer7, affect8, bin3"):
        services.label_names("fer9")


def test_agreement_summary_matches_an_independent_computation(study):
    summary = services.agreement_summary(study.testset)
    votes = study.votes
    assert summary == {
        "n_images": votes["image"].nunique(),
        "n_annotators": 10,
        "n_votes": len(votes),
        "n_ties": summary["n_ties"],
        "agreement_accuracy": pytest.approx(helpers.agreement_accuracy(votes)),
        "loo_agreement": pytest.approx(helpers.loo_accuracy(votes)),
        "fleiss_kappa": pytest.approx(helpers.fleiss_kappa(votes)),
        "krippendorff_alpha": pytest.approx(helpers.krippendorff_alpha(votes)),
    }


def test_agreement_summary_of_an_unlabelled_testset(db):
    empty = stored.TestSet.objects.create(name="empty")
    assert services.agreement_summary(empty) == {
        "n_images": 0, "n_annotators": 0, "n_votes": 0, "n_ties": 0,
        "agreement_accuracy": None, "loo_agreement": None,
        "fleiss_kappa": None, "krippendorff_alpha": None,
    }


# --------------------------------------------------------------------------- running models


class BrightnessModel:
    """Labels a face by its mean brightness, so the right answer for every file is known."""

    label_set, classes, input_size, channels = "bin3", BIN3, 48, 1

    def __init__(self, thresholds):
        self.thresholds = thresholds
        self.path = Path("brightness.pt")
        self.checkpoint = {"model": {"name": "brightness"}}
        self.batches = []
        # what the prediction store knows a network by
        self.key, self.tta, self.precision, self.members = f"brightness-{thresholds}", "none", "fp32", []

    def label_of(self, pixels: np.ndarray) -> str:
        return BIN3[int(np.digitize(pixels.mean(), self.thresholds))]

    def predict_proba_arrays(self, batch, label_set=None):
        self.batches.append(len(batch))
        return np.eye(3)[[BIN3.index(self.label_of(image)) for image in batch]]

    def in_labels(self, probs, label_set=None):
        return probs


@pytest.fixture
def brightness(study, monkeypatch):
    means = [read_gray(path).mean() for path in study.images.iterdir()]
    model = BrightnessModel(np.quantile(means, [1 / 3, 2 / 3]))

    class FakePredictor:
        @staticmethod
        def from_name(name, **kwargs):
            return model

    monkeypatch.setattr(services, "Predictor", FakePredictor)
    return model


def test_each_image_gets_its_own_prediction(study, brightness):
    keys = sorted(p.name for p in study.images.iterdir())
    models = services.load_models(["brightness"])
    predictions = services.predict_images(study.testset, models, keys, "bin3")["brightness"]
    expected = {key: brightness.label_of(read_gray(study.images / key)) for key in keys}
    assert predictions == expected
    assert len(set(expected.values())) == 3
    assert brightness.batches == [len(keys)]  # one pass over all images


def test_benchmark_scores_a_model_on_the_paired_images_only(study, brightness):
    result = services.run_benchmark(study.testset, ["brightness"], holdout="a05")
    reference, human, _ = helpers.paired_set(study.votes, "a05")
    predicted = {key: brightness.label_of(read_gray(study.images / key)) for key in reference}
    model = result["models"][0]
    assert brightness.batches == [len(reference)]
    assert model["n_images"] == result["holdout"]["n_images"] == len(reference)
    assert model["accuracy"] == pytest.approx(helpers.accuracy(predicted, reference))
    assert model["mcnemar_p"] == pytest.approx(helpers.mcnemar_p(human, predicted, reference))
    assert model["checkpoint"] == "brightness.pt" and model["training_label_set"] == "bin3"


def test_a_model_is_loaded_once_and_run_in_one_batch(study, model_dir, monkeypatch):
    loads, passes = [], []
    original_init, original_run = Predictor.__init__, Predictor.predict_proba_arrays

    def counting_init(self, *args, **kwargs):
        loads.append(args[0])
        original_init(self, *args, **kwargs)

    def counting_run(self, batch, label_set=None):
        passes.append(len(batch))
        return original_run(self, batch, label_set)

    monkeypatch.setattr(Predictor, "__init__", counting_init)
    monkeypatch.setattr(Predictor, "predict_proba_arrays", counting_run)
    result = services.run_benchmark("study", ["bkmin", "bkmin"])
    assert len(loads) == 1 and passes == [result["holdout"]["n_images"]]
    assert [m["name"] for m in result["models"]] == ["bkmin"]
    assert result["models"][0]["architecture"] == "bkmin"
    assert result["label_set"] == "bin3"


@pytest.fixture
def pos2_checkpoint(bkmin_checkpoint, model_dir):
    """bkmin cut down to a two-class (pos2) head: a model that cannot answer in bin3."""
    checkpoint = torch.load(bkmin_checkpoint, weights_only=True)
    checkpoint["model"]["num_classes"] = 2
    checkpoint["labels"] = {"set": "pos2", "classes": ["non-positive", "positive"]}
    for key in ("classifier.5.weight", "classifier.5.bias"):
        checkpoint["state_dict"][key] = checkpoint["state_dict"][key][:2].clone()
    path = model_dir / "bkmin_pos2.pt"
    torch.save(checkpoint, path)
    yield path
    path.unlink()


def test_a_pos2_model_cannot_be_scored_on_bin3(study, pos2_checkpoint):
    with pytest.raises(BenchmarkError) as caught:
        services.run_benchmark(study.testset, ["bkmin_pos2"])
    assert str(caught.value) == (
        "Model 'bkmin_pos2' was trained on pos2 labels (non-positive, positive) and cannot be "
        "scored on bin3 (negative, neutral, positive)."
    )
    result = services.run_benchmark(study.testset, ["bkmin_pos2", "bkmin"], labels="pos2")
    assert [m["training_label_set"] for m in result["models"]] == ["pos2", "fer7"]


def test_a_damaged_image_file_is_named(study, model_dir):
    reference, _, _ = helpers.paired_set(study.votes, "a01")
    key = sorted(reference)[0]
    image = stored.Image.objects.get(testset=study.testset, key=key)
    Path(image.file.path).write_bytes(b"\x89PNG broken")
    with pytest.raises(BenchmarkError) as caught:
        services.run_benchmark(study.testset, ["bkmin"], holdout="a01")
    assert str(caught.value).startswith(f"Image {key!r} of test set 'study' cannot be read: ")


def test_a_holdout_with_no_paired_image(db, model_dir, django_user_model):
    testset = stored.TestSet.objects.create(name="two")
    for name, digit in (("ann", "0"), ("bob", "1")):  # each labelled an image nobody else did
        image = stored.Image.objects.create(testset=testset, key=f"{name}.png", file=f"{name}.png",
                                     sha256=digit * 64, width=48, height=48)
        image.votes.create(annotator=django_user_model.objects.create_user(name), label="neutral")
    with pytest.raises(BenchmarkError, match="Test set 'two': Annotator 'ann' shares no image"):
        services.run_benchmark(testset, [], holdout="ann")
