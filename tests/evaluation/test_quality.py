"""Annotator quality against a worked example, its flags, the command, the page, and
exclusions (reversible, recorded, listed by the report)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from django.core.management import call_command

from annotator.controls import import_controls
from annotator.image_import import import_testset
from annotator.models import Exclusion
from annotator.testsets import do_exclude, do_include
from annotator.voting import do_cast_vote
from evaluation import quality, services
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.annotator.helpers import write_faces

pytestmark = pytest.mark.django_db

# i1..i4 regular, i5 a control image (known answer positive)
VOTES = {
    "a": ["positive", "negative", "neutral", "positive", "positive"],
    "b": ["positive", "negative", "positive", "positive", "positive"],
    "c": ["positive", "neutral", "neutral", "negative", "negative"],
    "d": ["negative", "negative", "negative", "negative", "negative"],
}


@pytest.fixture
def worked(tmp_path, fer_faces, django_user_model):  # noqa: F811
    folder = tmp_path / "q"
    write_faces(folder, fer_faces[30:35], subfolders=False)
    for n, path in enumerate(sorted(folder.iterdir()), start=1):
        path.rename(folder / f"i{n}.png")
    testset = import_testset(folder, name="quality").testset
    import_controls(b"image,label\ni5.png,positive\n", testset)
    images = list(testset.images.order_by("key"))
    for name, labels in VOTES.items():
        user = django_user_model.objects.create_user(name)
        for image, label in zip(images, labels):
            do_cast_vote(user, image, label, time_spent_ms=300 if name == "d" else 2000)
    boss = django_user_model.objects.create_user("boss", is_staff=True)
    do_exclude(testset, django_user_model.objects.get(username="d"), "always negative", by=boss)
    return testset


def wilson(k, n, z=1.959963984540054):
    centre, half = (k + z * z / 2) / (n + z * z), z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return [centre - half, centre + half]


def test_the_worked_example(worked):
    rows = {row["annotator"]: row for row in services.annotator_quality(worked)["annotators"]}
    # a, b, c count in the majorities; d is excluded and compared with the majority of a, b, c.
    # a: i1 against b, c (positive) right; i2, i3, i4 tie among the others.
    # b: i1 right; i3 against a, c (neutral) wrong. c: i1 right; i2 against negative, i4
    # against positive wrong. d: i1 positive, i2 negative, i3 neutral, i4 positive: one right.
    expected = {"a": (1, 1), "b": (1, 2), "c": (1, 3), "d": (1, 4)}
    for name, (matching, compared) in expected.items():
        row = rows[name]
        assert (row["loo_agreement"], row["loo_n_compared"]) == (matching / compared, compared), name
        assert row["loo_ci95"] == pytest.approx(wilson(matching, compared)), name
        assert (row["n_votes"], row["n_images"], row["control_votes"]) == (5, 4, 1), name
    # c's votes against the others' majority (rows: majority, columns: vote; negative, neutral,
    # positive): negative -> neutral on i2, positive -> positive on i1, positive -> negative on i4.
    assert rows["c"]["confusion_counts"] == [[0, 1, 0], [0, 0, 0], [1, 0, 1]]
    # observed 1/3, chance (1*1 + 0*1 + 2*1) / 9 = 1/3: kappa 0
    assert rows["c"]["cohens_kappa"] == pytest.approx(0.0)
    assert rows["a"]["cohens_kappa"] is None  # one label on both sides: chance agreement is 1
    assert [rows[n]["control_accuracy"] for n in "abcd"] == [1.0, 1.0, 0.0, 0.0]
    assert rows["c"]["control_ci95"] == pytest.approx(wilson(0, 1))
    assert rows["d"]["excluded"] and rows["d"]["median_seconds"] == pytest.approx(0.3)
    assert (rows["d"]["top_answer"], rows["d"]["top_answer_share"]) == ("negative", 1.0)
    assert rows["d"]["flags"] == ["fast: median 0.30 s per vote (under 1 s)",
                                  "one answer: 100% of the votes are 'negative' (over 80%)"]
    assert rows["a"]["flags"] == []


def test_agreement_or_control_accuracy_far_below_the_panel_is_flagged():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 60)
    names = ["good1", "good2", "good3", "careless"]
    answers = [np.where(rng.random(60) < 0.9, truth, (truth + 1) % 3) for _ in range(3)] + [(truth + 1) % 3]
    votes = quality.CodedVotes(np.repeat(np.arange(4), 60), np.tile(np.arange(60), 4), np.concatenate(answers))
    controls = (np.repeat(np.arange(4), 10), np.array([True] * 30 + [False] * 10))
    rows = quality.quality_table(names, votes, 60, ["negative", "neutral", "positive"], 3,
                                 [False] * 4, [2.0] * 4, controls)
    flagged = {row["annotator"]: row["flags"] for row in rows}
    assert flagged["good1"] == flagged["good2"] == flagged["good3"] == []
    assert [f.split(":")[0] for f in flagged["careless"]] == ["agreement below the panel's",
                                                              "control accuracy below the panel's"]


def test_the_command_prints_the_table_and_writes_csv(worked, tmp_path, capsys):
    out = tmp_path / "quality.csv"
    call_command("annotator_quality", "--testset", "quality", "--csv", str(out))
    printed = capsys.readouterr().out
    assert "d (excluded)" in printed and "d: fast: median 0.30 s per vote" in printed
    lines = out.read_text().splitlines()
    assert lines[0].startswith("annotator,votes,images,median s,agreement") and len(lines) == 5


def test_exclusions_are_reversible_recorded_and_listed_by_the_report(worked, django_user_model):
    d = django_user_model.objects.get(username="d")
    result = services.run_benchmark(worked, [], holdout="a")
    assert [e["annotator"] for e in result["testset"]["excluded_annotators"]] == ["d"]
    assert result["testset"]["excluded_annotators"][0]["reason"] == "always negative"
    assert "d" not in {a["annotator"] for a in result["agreement"]["per_annotator"]}
    do_include(worked, d)
    assert "d" in {a["annotator"] for a in services.run_benchmark(worked, [], holdout="a")["agreement"]["per_annotator"]}
    assert Exclusion.objects.filter(annotator=d).get().lifted_at is not None  # the record stays


def test_the_staff_page_shows_flags_and_excludes_with_a_reason(worked, client, django_user_model):
    client.force_login(django_user_model.objects.get(username="boss"))
    page = client.get("/evaluation/quality/quality/").content.decode()
    assert "d: fast: median 0.30 s per vote" in page
    # c's heat map: majority positive (row 3), vote negative: 1 of 2, half the row
    assert 'class="shade-4" title="1 vote(s), 50 % of the row"' in page
    answer = client.post("/evaluation/quality/quality/", {"annotator": "c", "action": "exclude", "reason": "tests"})
    assert answer.status_code == 302
    assert Exclusion.objects.filter(annotator__username="c", lifted_at__isnull=True, reason="tests").exists()
    empty = client.post("/evaluation/quality/quality/", {"annotator": "b", "action": "exclude", "reason": ""},
                        follow=True)
    assert "Say why b is excluded" in empty.content.decode()
