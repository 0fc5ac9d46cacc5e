"""``manage.py benchmark`` end to end on real FER+ votes, and its error messages."""

import json
import time
from collections import Counter

import numpy as np
import pytest
from django.core.management import CommandError

from ferml.inference import Predictor

from . import helpers
from .helpers import BIN3, read_gray, run_command, write_study

pytestmark = pytest.mark.django_db


def import_study(study, name):
    run_command("import_testset", str(study.images), "--name", name)
    run_command("import_votes", str(study.votes_csv), "--testset", name)


def check_against_independent_computation(result, study, model_names):
    """Every figure of the JSON, recomputed from the votes and from the model itself."""
    votes = study.votes
    assert result["labels"] == BIN3
    assert result["testset"]["n_images"] == votes["image"].nunique()
    assert result["testset"]["n_annotators"] == votes["annotator"].nunique()
    assert result["testset"]["n_votes"] == len(votes)
    assert result["testset"]["n_ties"] == sum(
        helpers.unique_top(Counter(by.values())) is None
        for by in helpers.labels_by_image(votes).values()
    )

    agreement = result["agreement"]
    assert agreement["accuracy"] == pytest.approx(helpers.agreement_accuracy(votes), abs=1e-12)
    assert agreement["loo_accuracy"] == pytest.approx(helpers.loo_accuracy(votes), abs=1e-12)
    assert agreement["fleiss_kappa"] == pytest.approx(helpers.fleiss_kappa(votes), abs=1e-9)
    assert agreement["krippendorff_alpha"] == pytest.approx(
        helpers.krippendorff_alpha(votes), abs=1e-9
    )
    loo = helpers.loo_by_annotator(votes)
    per_annotator = agreement["per_annotator"]
    assert {a["annotator"]: (a["n_matching"], a["n_compared"]) for a in per_annotator} == loo

    holdout = result["holdout"]
    expected_holdout = helpers.median_annotator(votes)
    assert (holdout["annotator"], holdout["selection"]) == (expected_holdout, "auto")
    reference, human, ties = helpers.paired_set(votes, expected_holdout)
    assert holdout["n_images"] == len(reference) > 0
    assert holdout["n_excluded_ties"] == ties
    assert holdout["accuracy"] == pytest.approx(helpers.accuracy(human, reference), abs=1e-12)
    check_interval(holdout["ci95"], holdout["accuracy"], holdout["n_images"])

    assert [m["name"] for m in result["models"]] == model_names
    for model in result["models"]:
        predictor = Predictor.from_name(model["name"])
        keys = list(reference)
        faces = [read_gray(study.images / key) for key in keys]
        predicted = dict(zip(keys, helpers.predicted_labels(predictor, faces, "bin3")))
        assert model["n_images"] == holdout["n_images"]
        assert model["accuracy"] == pytest.approx(helpers.accuracy(predicted, reference), abs=1e-12)
        assert model["mcnemar_p"] == pytest.approx(
            helpers.mcnemar_p(human, predicted, reference), rel=1e-9
        )
        check_interval(model["ci95"], model["accuracy"], model["n_images"])
        counts = np.array(model["confusion_counts"])
        assert counts.sum() == model["n_images"]
        assert np.trace(counts) == round(model["accuracy"] * model["n_images"])
        assert model["checkpoint"] == f"{model['name']}.pt"
        assert model["training_label_set"] == predictor.label_set


def check_interval(ci, accuracy, n):
    """A percentile bootstrap interval holds the estimate and is about as wide as the normal one."""
    lo, hi = ci
    assert 0 <= lo <= accuracy <= hi <= 1
    half_width = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
    assert (hi - lo) / 2 == pytest.approx(half_width, abs=0.015)


def test_benchmark_on_the_ferplus_sample_matches_an_independent_computation(
    tmp_path, fer_sample_csv, ferplus_sample_csv, model_dir
):
    study = write_study(tmp_path, fer_sample_csv, ferplus_sample_csv, seed=11)
    import_study(study, "ferplus-sample")
    report_json, report_html = tmp_path / "out" / "report.json", tmp_path / "out" / "report.html"

    text = run_command(
        "benchmark", "--model", "bkmin", "--json", str(report_json), "--html", str(report_html)
    )

    result = json.loads(report_json.read_text())
    assert result["testset"]["name"] == "ferplus-sample"
    check_against_independent_computation(result, study, ["bkmin"])
    assert result["models"][0]["training_label_set"] == "fer7"  # binned retroactively
    assert f"Held-out annotator {result['holdout']['annotator']} (auto" in text
    assert "bkmin: bkmin.pt (bkmin, trained on fer7)" in text
    assert f"JSON report written to {report_json}" in text
    page = report_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('src="data:image/png;base64,') == 3


@pytest.mark.full_data
@pytest.mark.slow
def test_benchmark_on_all_public_test_rows(tmp_path, full_fer2013, full_ferplus, model_dir):
    study = write_study(tmp_path, full_fer2013, full_ferplus, seed=11)
    import_study(study, "ferplus-public")
    report_json = tmp_path / "report.json"

    started = time.perf_counter()
    run_command("benchmark", "--model", "bkmin", "--json", str(report_json))
    seconds = time.perf_counter() - started

    result = json.loads(report_json.read_text())
    print(
        f"\nbenchmark of one model on {result['testset']['n_images']} images "
        f"({result['holdout']['n_images']} paired): {seconds:.1f} s"
    )
    assert result["testset"]["n_images"] > 3500
    check_against_independent_computation(result, study, ["bkmin"])
    # speed is measured by scripts/benchmark_speed.sh, not asserted here


# --------------------------------------------------------------------------- options


@pytest.fixture
def small_study(tmp_path, fer_sample_csv, ferplus_sample_csv):
    study = write_study(tmp_path / "small", fer_sample_csv, ferplus_sample_csv, limit=40)
    import_study(study, "small")
    return study


def test_without_model_every_available_model_runs(small_study, model_dir):
    text = run_command("benchmark", "--testset", "small")
    assert "bkmin" in text and "Checkpoints" in text


def test_chosen_holdout_and_pos2_labels(small_study, model_dir, tmp_path):
    out = tmp_path / "pos2.json"
    run_command("benchmark", "--model", "bkmin", "--holdout", "a03", "--labels", "pos2",
                "--seed", "5", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["labels"] == ["non-positive", "positive"]
    assert result["holdout"]["annotator"] == "a03" and result["holdout"]["selection"] == "given"
    assert result["bootstrap"]["seed"] == 5
    votes = small_study.votes
    pos2_votes = votes.assign(label=votes["label"].where(votes["label"] == "positive", "non-positive"))
    reference, human, _ = helpers.paired_set(pos2_votes, "a03")
    assert result["holdout"]["n_images"] == result["models"][0]["n_images"] == len(reference)
    assert result["holdout"]["accuracy"] == pytest.approx(helpers.accuracy(human, reference))


# --------------------------------------------------------------------------- errors


def command_error(*args) -> str:
    with pytest.raises(CommandError) as caught:
        run_command("benchmark", *args)
    return str(caught.value)


def test_unknown_model_prints_the_train_command(small_study, model_dir):
    message = command_error("--model", "dense121_100")
    assert "No trained weights for model 'dense121_100'" in message
    assert "python -m ferml train --model dense121_100" in message


def test_missing_checkpoint_file(small_study, model_dir, tmp_path):
    message = command_error("--model", str(tmp_path / "nowhere.pt"))
    assert "nowhere.pt: no such checkpoint file" in message


def test_broken_checkpoint(small_study, model_dir):
    (model_dir / "broken.pt").write_bytes(b"not a checkpoint at all")
    try:
        message = command_error("--model", "broken")
    finally:
        (model_dir / "broken.pt").unlink()
    assert "Model 'broken' cannot be loaded" in message and "not a ferml checkpoint" in message


def test_no_model_anywhere_says_how_to_train_one(small_study, no_models):
    message = command_error("--testset", "small")
    assert "No trained model found" in message
    assert "python -m ferml train --model bkvgg12" in message


def test_unknown_testset(small_study, model_dir):
    assert command_error("--testset", "nosuch", "--model", "bkmin") == (
        "There is no test set named 'nosuch' (known: small)."
    )


def test_testset_must_be_named_when_there_are_several(small_study, model_dir, tmp_path):
    run_command("import_testset", str(small_study.images), "--name", "other")
    message = command_error("--model", "bkmin")
    assert "several test sets" in message and "--testset NAME" in message


def test_no_testset_at_all(db, model_dir):
    assert "There is no test set yet" in command_error("--model", "bkmin")


def test_testset_without_votes(model_dir, tmp_path, fer_sample_csv, ferplus_sample_csv):
    study = write_study(tmp_path, fer_sample_csv, ferplus_sample_csv, limit=5)
    run_command("import_testset", str(study.images), "--name", "unlabelled")
    message = command_error("--model", "bkmin")
    assert message.startswith("Test set 'unlabelled' has no votes yet")


def test_unknown_holdout(small_study, model_dir):
    message = command_error("--model", "bkmin", "--holdout", "zed")
    assert message.startswith("There is no annotator named 'zed'")
    assert "a01, a02" in message


def test_holdout_without_votes_on_this_testset(small_study, model_dir, django_user_model):
    django_user_model.objects.create_user("newcomer")
    message = command_error("--model", "bkmin", "--holdout", "newcomer")
    assert message.startswith("Annotator 'newcomer' has no votes on test set 'small'")


def test_a_label_set_the_scheme_does_not_map_into_is_refused(small_study, model_dir):
    # bin3 votes cannot be split into emotions
    message = command_error("--model", "bkmin", "--labels", "fer7")
    assert message == ("Test set 'small' votes in bin3 (negative, neutral, positive), which cannot be "
                       "scored in 'fer7'; choose bin3 or pos2.")


def test_unwritable_report_file(small_study, model_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    message = command_error("--model", "bkmin", "--json", str(blocker / "report.json"))
    assert message.startswith("Cannot write the JSON report to")
