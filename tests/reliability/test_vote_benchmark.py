"""The benchmark scripts, run briefly against Django's live server: benchmark_votes.py's
annotators log in and label, every request is timed, the database is checked against what
the server confirmed and the annotators are removed afterwards; benchmark_pages.py opens
every staff page and the report."""
import json

import pytest
from django.contrib.auth import get_user_model

from annotator.models import Vote
from scripts import benchmark_votes

from .conftest import STUDY

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_benchmark_times_checks_and_cleans_up(live_server, study, tmp_path, capsys):
    code = benchmark_votes.main([
        "--url", live_server.url, "--testset", STUDY, "--annotators", "3", "--pause", "0",
        "--seconds", "2", "--direct", "--json", str(tmp_path / "bench.json"),
    ])
    out = capsys.readouterr().out
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert code == 0 and figures["problems"] == []
    assert 0 < figures["votes"] <= 3 * 8  # the study has 8 faces
    for kind in ("vote", "next_image"):
        row = figures[kind]
        assert row["n"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
        assert 0 < row["app_p50_ms"] <= row["app_p95_ms"]  # the server's own time, from Server-Timing
    assert "none lost, none doubled" in out and "votes/s" in out
    assert not get_user_model().objects.filter(username__startswith="bench-").exists()


def test_the_check_names_votes_lost_and_votes_it_did_not_send(study):
    """ann has 3 stored votes (conftest); the client claims one confirmed vote elsewhere."""
    unvoted = study.images.exclude(votes__annotator__username="ann").first()
    person = benchmark_votes.Annotator("ann", "pw")
    person.votes[unvoted.pk] = "positive"
    person.actions["cast"] += 1
    assert Vote.objects.filter(annotator__username="ann").count() == 3
    assert benchmark_votes.check([person], STUDY) == [
        "ann: 1 lost or changed, 3 stored without a confirmation, 0 cast twice"]


def test_the_page_benchmark_opens_every_staff_page_and_the_report(live_server, study, capsys, monkeypatch,
                                                                  tmp_path):
    import ferml.modelfiles
    from scripts import benchmark_pages

    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-weights")  # no model: a quick report
    monkeypatch.delenv("FERML_MODEL_DIR", raising=False)
    code = benchmark_pages.main(["--url", live_server.url, "--testset", STUDY, "--repeat", "2", "--report",
                                 "--direct"])
    out = capsys.readouterr().out
    assert code == 0, out
    for page in ("dashboard", "reports index", "admin: votes", "raw votes csv", "zip"):
        assert page in out
    assert "report computed: 200 after" in out and "report page with the stored report: 200" in out
    assert not get_user_model().objects.filter(username="bench-staff").exists()
