"""The staff report pages: who may see them, the choices, the downloads."""

import html
import json
from pathlib import Path

import pytest
from django.urls import reverse

from evaluation import services

from .helpers import run_command, write_study

pytestmark = pytest.mark.django_db


REPORT = reverse("evaluation:report", args=["study"])
PAGES = [
    reverse("evaluation:index"),
    REPORT,
    reverse("evaluation:report_json", args=["study"]),
    reverse("evaluation:report_html", args=["study"]),
]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, study, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("url", PAGES)
def test_annotators_are_refused(client, study, url, django_user_model):
    client.force_login(django_user_model.objects.get(username="a01"))
    response = client.get(url)
    assert response.status_code == 403


def test_staff_see_the_report_with_its_figures(staff_client, study):
    response = staff_client.get(REPORT)
    assert response.status_code == 200
    result = response.context["result"]
    assert result == services.run_benchmark("study", ["bkmin"])
    page = response.content.decode()
    assert f"Held-out annotator {result['holdout']['annotator']}" in page
    assert f"{100 * result['holdout']['accuracy']:.1f} %" in page
    assert f"{100 * result['models'][0]['accuracy']:.1f} %" in page
    assert f"{result['agreement']['fleiss_kappa']:.3f}" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert "bkmin.pt (bkmin, trained on fer7)" in page


def test_staff_choose_holdout_labels_and_models(staff_client, study):
    response = staff_client.get(REPORT, {"holdout": "a04", "labels": "pos2", "seed": "2"})
    assert response.status_code == 200
    result = response.context["result"]
    assert result["holdout"]["annotator"] == "a04" and result["holdout"]["selection"] == "given"
    assert result["labels"] == ["non-positive", "positive"]
    assert result["models"] == []  # no model box ticked
    assert result["bootstrap"]["seed"] == 2
    assert "Held-out annotator a04" in response.content.decode()


def test_the_form_offers_the_annotators_and_the_available_models(staff_client, study):
    form = staff_client.get(REPORT).context["form"]
    annotators = [f"a{i:02d}" for i in range(1, 11)]
    assert [c for c, _ in form.fields["holdout"].choices] == ["auto", "all"] + annotators
    assert form.fields["models"].choices == [("bkmin", "bkmin")]


def test_json_download_is_the_benchmark_result(staff_client, study):
    query = {"holdout": "a02", "labels": "bin3", "models": ["bkmin"], "seed": "1"}
    response = staff_client.get(reverse("evaluation:report_json", args=["study"]), query)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="study-benchmark.json"'
    expected = services.run_benchmark("study", ["bkmin"], holdout="a02", seed=1)
    assert json.loads(response.content) == json.loads(json.dumps(expected))


def test_html_download_is_one_self_contained_page(staff_client, study):
    response = staff_client.get(reverse("evaluation:report_html", args=["study"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith("<!DOCTYPE html>") and page.count('src="data:image/png;base64,') == 3


def test_the_page_and_the_download_show_the_same_sections(staff_client, study):
    from tests.evaluation.test_report import section_texts

    page = staff_client.get(REPORT)
    download = staff_client.get(reverse("evaluation:report_html", args=["study"])).content.decode()
    for item in section_texts(page.context["result"]):
        assert html.escape(item) in page.content.decode() and html.escape(item) in download, item


def test_download_links_keep_the_choices(staff_client, study):
    page = staff_client.get(REPORT, {"holdout": "a04", "labels": "bin3"}).content.decode()
    json_url = reverse("evaluation:report_json", args=["study"])
    assert f"{json_url}?holdout=a04&amp;labels=bin3" in page


def test_an_unknown_holdout_is_a_form_error(staff_client, study):
    response = staff_client.get(REPORT, {"holdout": "zed", "labels": "bin3"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    json_url = reverse("evaluation:report_json", args=["study"])
    response = staff_client.get(json_url, {"holdout": "zed"})
    assert response.status_code == 400 and "holdout" in response.json()["error"]


def test_a_testset_without_votes_says_so(
    staff_client, model_dir, tmp_path, fer_sample_csv, ferplus_sample_csv
):
    study = write_study(tmp_path, fer_sample_csv, ferplus_sample_csv, limit=3)
    run_command("import_testset", str(study.images), "--name", "fresh")
    response = staff_client.get(reverse("evaluation:report", args=["fresh"]))
    assert response.status_code == 200
    assert "Test set &#x27;fresh&#x27; has no votes yet" in response.content.decode()
    response = staff_client.get(reverse("evaluation:report_json", args=["fresh"]))
    assert response.status_code == 400 and "has no votes yet" in response.json()["error"]


def test_an_unreadable_image_is_named_without_the_servers_folders(staff_client, study, settings):
    from annotator.models import Image

    image = Image.objects.filter(testset__name="study").order_by("key").first()
    stored = image.file.name
    Path(image.file.path).unlink()
    page = staff_client.get(REPORT).content.decode()
    error = staff_client.get(reverse("evaluation:report_json", args=["study"])).json()["error"]
    assert error.startswith(f"Image '{image.key}' of test set 'study' cannot be read: ")
    assert f"MEDIA_ROOT/{stored}" in error and str(settings.MEDIA_ROOT) not in error
    assert f"MEDIA_ROOT/{stored}" in page and str(settings.MEDIA_ROOT) not in page


def test_without_any_model_the_page_says_how_to_train_one(staff_client, study, no_models):
    response = staff_client.get(REPORT)
    assert response.status_code == 200
    assert response.context["result"]["models"] == []
    assert "python -m ferml train --model bkvgg12" in response.content.decode()


def test_an_unknown_testset_is_not_found(staff_client, study):
    assert staff_client.get(reverse("evaluation:report", args=["nosuch"])).status_code == 404


def test_the_index_lists_each_testset_with_its_agreement(staff_client, study):
    response = staff_client.get(reverse("evaluation:index"))
    assert response.status_code == 200
    page = response.content.decode()
    summary = services.agreement_summary(services.get_testset("study"))
    assert f'href="{REPORT}"' in page
    assert f"{summary['fleiss_kappa']:.3f}" in page
