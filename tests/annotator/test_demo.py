"""The embedded demo study: loads on a fresh database, loads again without change, and
gives the figures the README states."""
import re
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from annotator import models
from annotator.demo import DEMO_ANNOTATOR, DEMO_STAFF, DEMO_TESTSET
from annotator.models import Image, Vote, VoteEvent

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.django_db


def readme_figure(row_label: str) -> str:
    """The value cell of the README results row that starts with ``row_label``."""
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == row_label:
            return cells[1]
    raise AssertionError(f"README has no results row {row_label!r}")


def percent(cell: str) -> float:
    return float(re.match(r"([\d.]+) %", cell).group(1))


def test_load_demo_fresh_and_again(capsys):
    call_command("load_demo")
    testset = models.TestSet.objects.get(name=DEMO_TESTSET)
    assert Image.objects.filter(testset=testset).count() == 105
    assert Vote.objects.filter(image__testset=testset).count() == 1011
    annotators = set(Vote.objects.values_list("annotator__username", flat=True))
    assert annotators == {f"a{i:02d}" for i in range(1, 11)}
    state = (Image.objects.count(), Vote.objects.count(), VoteEvent.objects.count(),
             sorted(Vote.objects.values_list("image__key", "annotator__username", "label")))
    call_command("load_demo")
    assert state == (Image.objects.count(), Vote.objects.count(), VoteEvent.objects.count(),
                     sorted(Vote.objects.values_list("image__key", "annotator__username", "label")))
    assert "105 already present" in capsys.readouterr().out
    staff = authenticate(username=DEMO_STAFF[0], password=DEMO_STAFF[1])
    annotator = authenticate(username=DEMO_ANNOTATOR[0], password=DEMO_ANNOTATOR[1])
    assert staff.is_staff and not annotator.is_staff
    assert not get_user_model().objects.get(username="a01").has_usable_password()


def test_demo_benchmark_gives_the_readme_figures():
    from evaluation.services import run_benchmark
    from ferml.modelfiles import available_models

    call_command("load_demo")
    result = run_benchmark(DEMO_TESTSET, available_models())
    agreement, holdout = result["agreement"], result["holdout"]
    assert round(100 * agreement["accuracy"], 1) == percent(readme_figure("Demo: agreement accuracy (own vote counted)"))
    assert round(100 * agreement["loo_accuracy"], 1) == percent(readme_figure("Demo: leave-one-out agreement"))
    assert f"{agreement['fleiss_kappa']:.3f}" == readme_figure("Demo: Fleiss' kappa")
    assert f"{agreement['krippendorff_alpha']:.3f}" == readme_figure("Demo: Krippendorff's alpha")
    human = readme_figure("Demo: held-out human")
    assert round(100 * holdout["accuracy"], 1) == percent(human)
    assert f"{holdout['annotator']}, {holdout['n_images']} images" in human
    assert result["models"], "no shipped model"
    for model in result["models"]:
        cell = readme_figure(f"Demo: {model['name']}")
        assert round(100 * model["accuracy"], 1) == percent(cell)
        assert model["n_images"] == holdout["n_images"]


def test_benchmark_dense121_100_on_the_demo_prints_its_row():
    """The first command of the product brief: the thesis' best model, shipped, on the demo."""
    import io

    call_command("load_demo")
    out = io.StringIO()
    call_command("benchmark", "--testset", DEMO_TESTSET, "--model", "dense121_100", stdout=out)
    text = out.getvalue()
    row = re.search(r"^  dense121_100 +(\d+) +([\d.]+) %", text, re.M)
    assert row, text
    assert int(row.group(1)) == 97  # the held-out annotator's paired images
    assert "dense121_100: dense121_100.pt (dense121_100, trained on" in text
