"""``manage.py benchmark --holdout all`` and the staff page's panel, on real FER+ votes."""

import json

import pytest
from django.core.management import CommandError
from django.urls import reverse

from ferml.inference import Predictor

from . import helpers
from .helpers import read_gray, run_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def count_model_runs(monkeypatch):
    """How many times any model ran over a batch of images."""
    runs = []
    original = Predictor.predict_proba_arrays

    def counted(self, batch, label_set=None):
        runs.append(len(batch))
        return original(self, batch, label_set)

    monkeypatch.setattr(Predictor, "predict_proba_arrays", counted)
    return runs


def test_holdout_all_from_the_command_line(study, tmp_path, count_model_runs):
    out = tmp_path / "panel.json"
    text = run_command("benchmark", "--model", "bkmin", "--holdout", "all", "--json", str(out))
    result = json.loads(out.read_text())
    # the model ran once, on every image some annotator is scored on, not once per annotator
    assert count_model_runs == [result["panel"]["n_images"]]

    panel = result["panel"]
    assert (panel["reference"], panel["min_images"]) == ("majority", 20)
    assert panel["n_annotators"] == 10 == len(panel["annotators"])
    predictor = Predictor.from_name("bkmin")
    keys = sorted(study.votes["image"].unique())
    predicted = dict(zip(keys, helpers.predicted_labels(predictor, [read_gray(study.images / k) for k in keys],
                                                 "bin3")))
    included = []
    for entry in panel["annotators"]:
        reference, human, ties = helpers.paired_set(study.votes, entry["annotator"])
        assert (entry["n_images"], entry["n_excluded_ties"]) == (len(reference), ties)
        assert entry["included"] == (len(reference) >= 20)
        assert entry["accuracy"] == pytest.approx(helpers.accuracy(human, reference))
        assert entry["models"]["bkmin"] == pytest.approx(helpers.accuracy(predicted, reference))
        assert entry["mcnemar_p"]["bkmin"] == pytest.approx(
            helpers.mcnemar_p(human, predicted, reference)
        )
        if entry["included"]:
            included.append(entry)
    assert panel["n_annotators_included"] == len(included) >= 2
    human_mean = sum(a["accuracy"] for a in included) / len(included)
    model_mean = sum(a["models"]["bkmin"] for a in included) / len(included)
    [model] = panel["models"]
    assert panel["human_mean_accuracy"] == pytest.approx(human_mean)
    assert (model["name"], model["mean_accuracy"]) == ("bkmin", pytest.approx(model_mean))
    assert model["difference"] == pytest.approx(model_mean - human_mean)
    lo, hi = model["ci95"]
    assert lo < model["difference"] < hi and 0 <= model["p_value"] <= 1
    # today's keys stay beside the panel: the auto held-out annotator and the models
    assert result["holdout"]["selection"] == "auto" and result["models"][0]["name"] == "bkmin"
    assert result["testset"]["n_images_in_testset"] == 40
    assert "Panel: 10 annotators, each held out in turn" in text
    assert f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" in text


def test_dawid_skene_reference_and_minimum_from_the_command_line(study, tmp_path):
    out = tmp_path / "ds.json"
    text = run_command("benchmark", "--model", "bkmin", "--holdout", "all", "--reference",
                       "dawid-skene", "--min-images", "38", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["reference"] == result["panel"]["reference"] == "dawid-skene"
    assert "reference = the Dawid-Skene estimate from the other annotators' votes" in text
    panel = result["panel"]
    assert panel["min_images"] == 38
    assert [a["included"] for a in panel["annotators"]] == [
        a["n_images"] >= 38 for a in panel["annotators"]
    ]
    left_out = panel["n_annotators"] - panel["n_annotators_included"]
    assert 0 < left_out < 9  # on these 40 faces, 36 to 40 paired images each
    assert f"{left_out} annotator(s) with fewer than 38 paired images" in text


def test_a_single_holdout_with_the_dawid_skene_reference(study, tmp_path):
    out = tmp_path / "one.json"
    run_command("benchmark", "--model", "bkmin", "--holdout", "a02", "--reference",
                "dawid-skene", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["holdout"]["annotator"] == "a02" and "panel" not in result
    assert result["reference"] == "dawid-skene"


def command_error(*args) -> str:
    with pytest.raises(CommandError) as caught:
        run_command("benchmark", "--model", "bkmin", *args)
    return str(caught.value)


def test_bad_panel_options_are_named(study):
    assert command_error("--holdout", "all", "--min-images", "1") == (
        "The minimum of paired images per annotator must be 2 or more, not 1: the panel's "
        "jackknife leaves one image out."
    )
    assert "invalid choice: 'mode'" in command_error("--reference", "mode")


# --------------------------------------------------------------------------- the staff page


REPORT = reverse("evaluation:report", args=["study"])


def test_the_staff_page_shows_the_panel(staff_client, study):
    query = {"holdout": "all", "reference": "dawid-skene", "labels": "bin3",
             "models": ["bkmin"], "min_images": "20"}
    response = staff_client.get(REPORT, query)
    assert response.status_code == 200
    result = response.context["result"]
    assert result["panel"]["reference"] == "dawid-skene"
    page = response.content.decode()
    assert "Every annotator in turn: the panel of 10" in page
    assert page.count('src="data:image/png;base64,') == 5  # the panel's dots and lines, and its forest plot
    assert "the Dawid-Skene estimate from the other annotators&#x27; votes" in page
    model = result["panel"]["models"][0]
    assert f"{100 * model['mean_accuracy']:.1f} %" in page
    json_url = reverse("evaluation:report_json", args=["study"])
    download = staff_client.get(json_url, query).json()
    assert download["panel"] == json.loads(json.dumps(result["panel"]))


def test_the_staff_page_offers_the_panel_and_the_reference(staff_client, study):
    form = staff_client.get(REPORT).context["form"]
    assert [c for c, _ in form.fields["holdout"].choices][:2] == ["auto", "all"]
    assert [c for c, _ in form.fields["reference"].choices] == ["majority", "dawid-skene"]


@pytest.mark.parametrize("query, field", [
    ({"holdout": "all", "labels": "bin3", "min_images": "1"}, "min_images"),
    ({"holdout": "all", "labels": "bin3", "reference": "mode"}, "reference"),
])
def test_bad_panel_choices_are_form_errors(staff_client, study, query, field):
    assert staff_client.get(REPORT, query).status_code == 400
    response = staff_client.get(reverse("evaluation:report_json", args=["study"]), query)
    assert response.status_code == 400 and field in response.json()["error"]
