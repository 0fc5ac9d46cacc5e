"""The report page's benchmark as a kept background job: shown again without computing,
computed again when due or asked for, its progress shown while it runs."""
import re
import threading
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.models import Vote
from annotator.voting import do_cast_vote
from core import jobs
from core.models import Job
from evaluation import report_jobs, services

REPORT = reverse("evaluation:report", args=["study"])
CHOICES = {"holdout": "a03", "labels": "bin3", "reference": "majority", "min_images": "20",
           "models": ["bkmin"], "seed": "0"}


def change_a_vote():
    vote = Vote.objects.filter(annotator__username="a03").order_by("id").first()
    other = next(label for label in ("negative", "neutral", "positive") if label != vote.label)
    do_cast_vote(vote.annotator, vote.image, other)


@pytest.mark.django_db
def test_a_report_is_kept_and_shown_again_without_computing(staff_client, study):
    first = staff_client.get(REPORT, CHOICES)
    again = staff_client.get(REPORT, CHOICES)
    assert Job.objects.filter(kind=report_jobs.KIND).count() == 1
    assert again.context["result"] == first.context["result"]
    page = again.content.decode()
    assert re.search(r"Computed \d{4}-\d\d-\d\d \d\d:\d\d UTC in [0-9.]+ s from \d+ votes\.", page)
    assert "Compute again" in page and "have changed since" not in page


@pytest.mark.django_db
def test_changed_votes_recompute_a_quick_report_by_itself(staff_client, study):
    before = staff_client.get(REPORT, CHOICES).context["result"]
    change_a_vote()
    after = staff_client.get(REPORT, CHOICES).context["result"]
    assert Job.objects.filter(kind=report_jobs.KIND).count() == 2
    assert after == services.run_benchmark("study", ["bkmin"], holdout="a03") != before


@pytest.mark.django_db
def test_a_slow_report_says_the_votes_changed_and_is_computed_again_when_asked(
        staff_client, study, monkeypatch):
    monkeypatch.setattr(report_jobs, "QUICK_SECONDS", -1)  # every report counts as slow
    staff_client.get(REPORT, CHOICES)
    change_a_vote()
    page = staff_client.get(REPORT, CHOICES)
    assert Job.objects.count() == 1 and page.context["outdated"]
    assert "The votes have changed since." in page.content.decode()
    asked = staff_client.post(f"{REPORT}?{page.context['query']}")
    job = Job.objects.order_by("-id").first()
    assert asked.status_code == 302 and asked["Location"].endswith(f"&job={job.pk}")
    fresh = staff_client.get(asked["Location"])
    assert fresh.context["result"] == services.run_benchmark("study", ["bkmin"], holdout="a03")
    assert not fresh.context["outdated"] and Job.objects.count() == 2


@pytest.mark.django_db
def test_a_report_whose_worker_ended_is_computed_again(staff_client, study, settings):
    staff_client.get(REPORT, CHOICES)
    Job.objects.update(status="running", heartbeat_at=timezone.now() - timedelta(
        seconds=settings.JOB_STALE_SECONDS + 1))
    assert staff_client.get(REPORT, CHOICES).context["result"] is not None
    assert list(Job.objects.values_list("status", "attempts")) == [("done", 2)]  # the same job, run again


@pytest.mark.django_db(transaction=True)
def test_in_the_background_the_page_shows_progress_then_the_stored_result(
        staff_client, study, settings, monkeypatch, background_jobs):
    settings.REPORT_WAIT_SECONDS = 0
    release, real = threading.Event(), services.run_benchmark

    def held(*args, progress, **kwargs):
        progress("reading the votes")
        assert release.wait(60)
        return real(*args, progress=progress, **kwargs)

    monkeypatch.setattr(services, "run_benchmark", held)
    page = staff_client.get(REPORT, CHOICES)
    job = Job.objects.get(kind=report_jobs.KIND)
    text = page.content.decode()
    assert page.status_code == 200 and page.context["result"] is None
    assert "The report is being computed in the background" in text
    assert re.search(rf'<meta http-equiv="refresh" content="3; url=\?[^"]*&amp;job={job.pk}">', text)
    json_url = reverse("evaluation:report_json", args=["study"])
    running = staff_client.get(json_url, CHOICES)
    assert running.status_code == 202 and running.json()["status"] in ("queued", "running")
    html = staff_client.get(reverse("evaluation:report_html", args=["study"]), CHOICES)
    assert html.status_code == 202 and "The report is being computed" in html.content.decode()
    release.set()
    assert jobs.wait(job, 120).status == "done"
    shown = staff_client.get(REPORT, {**CHOICES, "job": job.pk})
    assert shown.context["result"] == real("study", ["bkmin"], holdout="a03")
    assert Job.objects.count() == 1  # the page showed the job it was pinned to
    assert staff_client.get(json_url, CHOICES).status_code == 200


@pytest.mark.django_db
def test_only_the_newest_reports_of_the_same_choices_are_kept(staff_client, study, monkeypatch):
    monkeypatch.setattr(report_jobs, "KEPT", 2)
    query = staff_client.get(REPORT, CHOICES).context["query"]
    for _ in range(3):
        staff_client.post(f"{REPORT}?{query}")
    kept = list(Job.objects.order_by("id").values_list("id", flat=True))
    assert len(kept) == 2 and staff_client.get(REPORT, CHOICES).context["job"].pk == kept[-1]
