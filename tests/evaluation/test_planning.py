"""The study planner and the non-inferiority tests, worked by hand on small examples."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import nct
from scipy.stats import t as student_t

from evaluation import planning, significance_tests


def pilot(human_rows, model_rows):
    human, model = np.array(human_rows, dtype=bool), np.array(model_rows, dtype=bool)
    return planning.components(human, model, np.ones_like(human, dtype=bool))


def test_components_se_df_and_power_of_a_two_annotator_pilot_by_hand():
    # a right on images 1-3, b on 1, 3, 4; the model on all four: d_a = d_b = 0.25.
    c = pilot([[1, 1, 1, 0], [1, 0, 1, 1]], [[1, 1, 1, 1], [1, 1, 1, 1]])
    # image k left out: d_a = [1/3, 1/3, 1/3, 0], d_b = [1/3, 0, 1/3, 1/3]; centred by 1/4,
    # cov = 3/4 sum: var = 3/4 (3/144 + 9/144) = 1/16 each; cov_ab = 3/4 (2/144 - 6/144) = -1/48
    assert (c.var_error, c.cov2, c.var_reader) == (pytest.approx(1 / 16), pytest.approx(-1 / 48), 0.0)
    assert (c.n_images, c.n_annotators, c.difference) == (4, 2, pytest.approx(0.25))
    # 2 annotators, 4 images: MS_R = 0 + 1/16 + 1/48 = 1/12 = the denominator (Cov2 < 0 adds
    # nothing); se = sqrt(1/12 / 2); df = (2 - 1) (1)^2 = 1
    test = planning.planned_test(c, 2, 4)
    assert (test.se, test.df) == (pytest.approx(math.sqrt(1 / 24)), pytest.approx(1.0))
    # 3 annotators, 8 images: the errors halve: MS_R = 1/32 + 1/96 = 1/24; se = sqrt(1/72); df = 2
    test = planning.planned_test(c, 3, 8)
    assert (test.se, test.df) == (pytest.approx(math.sqrt(1 / 72)), pytest.approx(2.0))
    ncp, critical = 0.25 / math.sqrt(1 / 72), student_t.ppf(0.975, 2)
    by_hand = nct.sf(critical, 2, ncp) + nct.sf(critical, 2, -ncp)
    assert planning.power(c, 3, 8, 0.25) == pytest.approx(by_hand)
    # non-inferiority within 5 points at a true difference of 0: one-sided at 5 %
    assert planning.power(c, 3, 8, 0.0, margin=0.05) == pytest.approx(
        nct.sf(student_t.ppf(0.95, 2), 2, 0.05 / math.sqrt(1 / 72)))


def test_a_positive_covariance_and_reader_variance_by_hand():
    # the same two annotators twice: their d move together, Cov2 = Var = 1/16, no reader variance
    twins = pilot([[1, 1, 1, 0], [1, 1, 1, 0]], [[1, 1, 1, 1], [1, 1, 1, 1]])
    assert (twins.var_error, twins.cov2) == (pytest.approx(1 / 16), pytest.approx(1 / 16))
    test = planning.planned_test(twins, 2, 4)  # MS_R = 0: se = sqrt(2 / 16 / 2), df infinite
    assert (test.se, test.df) == (pytest.approx(0.25), math.inf)
    # a right on half, b on all: d = 0.5 and 0; MS_R = 0.125. a's jackknife: [2/3, 2/3, 1/3, 1/3],
    # var = 3/4 * 4/36 = 1/12; b's is constant: Var = (1/12 + 0) / 2 = 1/24, Cov2 = 0, and the
    # annotators' own variance 0.125 - 1/24 = 1/12.
    spread = pilot([[1, 1, 0, 0], [1, 1, 1, 1]], [[1, 1, 1, 1], [1, 1, 1, 1]])
    assert (spread.var_error, spread.cov2, spread.var_reader) == (
        pytest.approx(1 / 24), pytest.approx(0.0), pytest.approx(1 / 12))
    test = planning.planned_test(spread, 4, 8)  # MS_R = 1/12 + 1/48 = 5/48; df = 3
    assert (test.se, test.df) == (pytest.approx(math.sqrt(5 / 192)), pytest.approx(3.0))
    # more images cannot remove the annotators' own variance: power stays below 80 % for a
    # small difference, so no number of images is enough
    assert planning.images_needed(spread, 4, 0.05) is None


def test_images_needed_is_the_smallest_with_the_power():
    c = planning.Components(var_reader=0.0004, var_error=0.002, cov2=0.0008, n_images=100, n_annotators=10,
                            difference=0.05, human_accuracy=0.8, model_accuracy=0.85)
    needed = planning.images_needed(c, 10, 0.05)
    assert planning.power(c, 10, needed, 0.05) >= 0.8 > planning.power(c, 10, needed - 1, 0.05)
    rows = planning.plan(c, [5, 10, 20], 0.05)
    assert [r.n_annotators for r in rows] == [5, 10, 20]
    assert rows[0].images_needed >= rows[1].images_needed >= rows[2].images_needed  # more readers, fewer images


def test_non_inferiority_to_one_annotator_by_hand():
    model = [1, 1, 0, 1, 1, 1, 0, 1]
    human = [1, 0, 1, 1, 1, 0, 1, 1]
    # d = [0, 1, -1, 0, 0, 1, -1, 0]: mean 0, sd sqrt(4 / 7), se sqrt(4 / 7) / sqrt(8)
    test = significance_tests.noninferiority_paired(np.array(model, bool), np.array(human, bool), 0.10, alpha=0.025)
    se = math.sqrt(4 / 7) / math.sqrt(8)
    assert (test.difference, test.df) == (0.0, 7.0)
    assert test.t == pytest.approx(0.10 / se)
    assert test.p_value == pytest.approx(student_t.sf(0.10 / se, 7))
    assert test.lower_bound == pytest.approx(-student_t.ppf(0.975, 7) * se)
    assert not test.non_inferior  # 8 images cannot show it within 10 points


def test_non_inferiority_to_a_panel_by_hand():
    # RJafroc's published reader study: difference -0.00584, 95 % CI [-0.03233, 0.02065] on
    # 31.0 df, so se = 0.05298 / (2 t_0.975,31)
    se = (0.02065 + 0.03233) / (2 * student_t.ppf(0.975, 31.0))
    panel = significance_tests.PanelTest(-0.00584, se, 31.0, -0.00584 / se, 0.656, (-0.03233, 0.02065), 10, 200, 0.0, 0.0)
    test = significance_tests.noninferiority_panel(panel, 0.05, alpha=0.025)
    assert test.t == pytest.approx((-0.00584 + 0.05) / se)
    assert test.p_value == pytest.approx(student_t.sf((-0.00584 + 0.05) / se, 31.0))
    assert test.lower_bound == pytest.approx(-0.03233, abs=1e-5)  # the 95 % interval's lower end
    assert test.non_inferior
    assert not significance_tests.noninferiority_panel(panel, 0.02, alpha=0.025).non_inferior  # -0.032 < -0.02


def test_the_benchmark_reports_non_inferiority_in_the_json_and_in_words():
    from evaluation.benchmark_core import build_benchmark_result
    from evaluation.report import format_report_text

    from .test_panel import HAND_MODEL, HAND_VOTES

    result = build_benchmark_result(HAND_VOTES, ["negative", "neutral", "positive"], holdout="all",
                                    model_predictions={"m": HAND_MODEL}, min_images=2, margin=0.05)
    assert result["margin"] == 0.05
    single = result["models"][0]["noninferiority"]
    assert set(single) == {"margin", "alpha", "difference", "lower_bound", "t", "df", "p_value", "non_inferior",
                           "method"}
    assert single["alpha"] == pytest.approx(0.025)
    panel = result["panel"]["models"][0]["noninferiority"]
    assert panel["method"].startswith("one-sided Obuchowski-Rockette-Hillis")
    text = format_report_text(result)
    first = text.splitlines()[1]
    assert first.startswith("m is ") and "the mean of 3 annotators" in first
    assert "within a margin of 5 points (one-sided p = " in first


@pytest.mark.django_db
def test_a_stored_study_as_the_pilot_on_the_command_line_and_the_page(study, staff_client, capsys):
    from django.core.management import call_command

    from evaluation import services

    components = services.pilot_components("study", "bkmin")
    assert components.n_annotators == 10 and components.var_error > 0
    call_command("plan_study", "--pilot", "study", "--model", "bkmin", "--difference", "5", "--annotators", "5", "10")
    out = capsys.readouterr().out
    assert out.startswith("Planned from pilot study with bkmin: annotators ")
    assert "For a true difference of +5.0 points, 80% power to find a difference (two-sided at 0.05)" in out
    assert [line.split()[0] for line in out.splitlines()[-2:]] == ["5", "10"]
    page = staff_client.get("/evaluation/study/plan/", {"model": "bkmin", "difference": "5", "alpha": "0.05",
                                                        "power": "0.8", "annotators": "5, 10"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "For a true difference of +5.0 points, 80% power" in text and 'src="data:image/png;base64,' in text
    assert page.context["result"]["rows"][0]["n_annotators"] == 5


def test_the_planner_refuses_what_it_cannot_plan(capsys):
    from django.core.management import CommandError, call_command

    for args, message in [
        (["--pilot", "nowhere"], "--pilot needs --model NAME"),
        (["--annotators", "1"], "the panel test needs 2 annotators or more"),
        (["--alpha", "5"], "--alpha and --power are shares"),
        (["--annotator-accuracy", "0.2", "0.95"], "The stated accuracies are not usable"),
        (["--margin", "0"], "The non-inferiority margin is in percentage points"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command("plan_study", *args)
