"""Staff dashboard figures, the agreement slot, and the admin."""

import pytest

from annotator.models import Vote, VoteEvent
from annotator.voting import do_cast_vote

from .helpers import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def timed_votes(study, annotators):
    ann, bob = annotators
    images = list(study.images.order_by("key"))
    for image, ms in zip(images[:3], [1000, 2000, 6000]):
        do_cast_vote(ann, image, "positive", time_spent_ms=ms)
    do_cast_vote(bob, images[0], "negative", time_spent_ms=500)
    return images


def test_dashboard_shows_progress_time_and_counts(client, staff, timed_votes, django_user_model):
    django_user_model.objects.create_user("newcomer")
    login(client, staff)
    response = client.get("/staff/")
    stats = {s.testset.name: s for s in response.context["stats"]}["study"]
    assert (stats.n_images, stats.n_votes, stats.n_annotators) == (8, 4, 2)
    people = {p.username: p for p in stats.annotators}
    assert (people["ann"].done, people["ann"].mean_ms, people["ann"].median_ms) == (3, 3000, 2000)
    assert (people["bob"].done, people["bob"].median_ms) == (1, 500)
    assert people["newcomer"].done == 0 and "boss" not in people
    page = response.content.decode()
    assert "3 / 8" in page and "3.0 s" in page and "2.0 s" in page and "0.5 s" in page
    assert "/staff/export/study/zip/" in page and "/staff/export/study/votes/" in page


def test_dashboard_shows_the_agreement_summary(client, staff, timed_votes):
    from evaluation.services import agreement_summary

    login(client, staff)
    page = client.get("/staff/").content.decode()
    testset = Vote.objects.first().image.testset
    expected = agreement_summary(testset)
    assert "agreement-summary" in page and "Fleiss" in page
    assert f"{expected['fleiss_kappa']:.3f}" in page
    assert f"{100 * expected['agreement_accuracy']:.1f} %" in page
    assert f"/evaluation/{testset.name}/" in page


def test_admin_lists_and_filters(client, timed_votes, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    login(client, admin)
    study_id = timed_votes[0].testset_id
    for url in ["/admin/annotator/testset/", "/admin/annotator/image/", f"/admin/annotator/image/?testset__id__exact={study_id}",
                "/admin/annotator/vote/", "/admin/annotator/voteevent/?action__exact=cast",
                f"/admin/annotator/image/{timed_votes[0].pk}/change/"]:
        assert client.get(url).status_code == 200, url
    positive = client.get("/admin/annotator/vote/?label__exact=positive")
    assert positive.context["cl"].result_count == 3
    by_bob = client.get(f"/admin/annotator/vote/?annotator__id__exact={django_user_model.objects.get(username='bob').pk}")
    assert by_bob.context["cl"].result_count == 1
    assert client.get("/admin/annotator/vote/add/").status_code == 403


def test_deleting_a_vote_in_the_admin_is_recorded(client, timed_votes, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw")
    login(client, admin)
    vote = Vote.objects.get(annotator__username="bob")
    response = client.post("/admin/annotator/vote/", {
        "action": "delete_selected", "_selected_action": [vote.pk], "post": "yes",
    })
    assert response.status_code == 302
    assert not Vote.objects.filter(pk=vote.pk).exists()
    event = VoteEvent.objects.get(action="delete")
    assert (event.annotator.username, event.previous_label) == ("bob", "negative")
