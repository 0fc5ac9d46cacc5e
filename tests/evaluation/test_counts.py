"""Agreement from vote counts per image, as the database adds them up for the staff pages,
equals agreement from the votes themselves; and the staff pages' queries do not grow with
the number of votes."""

import numpy as np
import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator import models as stored
from evaluation import agreement_stats, services, vote_tables
from evaluation.benchmark_core import agreement_block, agreement_block_from_counts

from .helpers import BIN3, counted, run_command


def random_votes(seed: int, n_images: int = 60, n_annotators: int = 7) -> pd.DataFrame:
    """Votes with gaps (not everyone labels everything) and many ties among few voters."""
    rng = np.random.default_rng(seed)
    rows = [
        (f"img{i:03d}", f"a{a}", BIN3[rng.integers(0, 3)])
        for i in range(n_images) for a in range(n_annotators) if rng.random() < 0.6
    ]
    return pd.DataFrame(rows, columns=["image", "annotator", "label"])


@pytest.mark.parametrize("seed", range(6))
def test_figures_from_counts_equal_figures_from_votes(seed):
    votes = random_votes(seed)
    counts = vote_tables.vote_counts(votes, BIN3).to_numpy()
    assert agreement_stats.agreement_accuracy_from_counts(counts) == pytest.approx(
        counted(agreement_stats.agreement_accuracy_from_counts, votes, BIN3))
    # the leave-one-out figure, vote by vote, without counts
    by_annotator = agreement_stats.loo_agreement_by_annotator(votes, BIN3).values()
    per_vote = agreement_stats.Agreement(sum(a.n_matching for a in by_annotator),
                                 sum(a.n_compared for a in by_annotator),
                                 sum(a.n_excluded for a in by_annotator))
    assert agreement_stats.loo_agreement_from_counts(counts) == per_vote
    assert vote_tables.vote_summary_from_counts(counts, votes["annotator"].nunique()) == vote_tables.vote_summary(votes, BIN3)
    assert agreement_block_from_counts(counts) == agreement_block(votes, BIN3)


def test_counts_of_nothing():
    empty = np.zeros((0, 3), dtype=np.int64)
    assert agreement_stats.loo_agreement_from_counts(empty) == agreement_stats.Agreement(0, 0, 0)
    assert vote_tables.vote_summary_from_counts(empty, 0) == {"n_images": 0, "n_annotators": 0, "n_votes": 0,
                                                          "n_ties": 0}


@pytest.fixture
def testset(study):
    """The evaluation tests' study (conftest): 40 real faces with their FER+ votes."""
    return stored.TestSet.objects.get(name="study")


@pytest.mark.django_db
def test_the_databases_count_table_is_the_votes_count_table(study, testset):
    table = services.vote_count_table(testset)
    expected = vote_tables.vote_counts(study.votes, BIN3)
    assert sorted(map(tuple, table)) == sorted(map(tuple, expected.to_numpy()))


@pytest.mark.django_db
def test_the_staff_pages_ask_the_same_number_of_questions_however_many_votes(
        study, testset, client, django_user_model):
    """The dashboard and the reports index read counts, not votes: as many queries for 15
    votes as for all of the study's (over ten times as many)."""
    client.force_login(django_user_model.objects.create_user("boss", is_staff=True))
    votes = stored.Vote.objects.filter(testset=testset)
    keep = set(votes.order_by("id").values_list("id", flat=True)[:15])
    stored.Vote.objects.exclude(pk__in=keep).delete()

    def questions(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    few = {url: questions(url) for url in ("/staff/", "/evaluation/")}
    run_command("import_votes", str(study.votes_csv), "--testset", "study", "--overwrite")
    assert votes.count() == len(study.votes) > 10 * 15
    for url, asked in few.items():
        assert len(questions(url)) == len(asked), url
