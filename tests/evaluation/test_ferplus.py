"""Every agreement figure on real FER+ crowd votes, recomputed independently.

The recounts below start from the raw FER+ csv (pandas sums of its columns, plain
Python loops), not from the votes that ``ferplus_votes`` builds, so a mistake in the
conversion or in the metrics shows up as a mismatch.
"""

from collections import Counter, defaultdict

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as sm_cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from evaluation import agreement_stats, heldout_scoring, vote_tables
from ferml.ferplus import ferplus_votes
from tests.ferml.test_ferplus import BIN3, binned_counts

from .helpers import counted


def recount_majority(counts: pd.DataFrame):
    majority, tied = {}, []
    for image, row in zip(counts.index, counts[BIN3].to_dict("records")):
        top = max(row.values())
        winners = [label for label in BIN3 if row[label] == top]
        if len(winners) == 1:
            majority[image] = winners[0]
        else:
            tied.append(image)
    return majority, tied


def recount_loo(counts: pd.DataFrame):
    """(matching, compared, excluded) votes, each vote against the others' majority."""
    matching = compared = excluded = 0
    for row in counts[BIN3].to_dict("records"):
        for label in BIN3:
            if row[label] == 0:
                continue
            others = {lab: row[lab] - (lab == label) for lab in BIN3}
            top = max(others.values())
            winners = [lab for lab in BIN3 if others[lab] == top]
            if top == 0 or len(winners) > 1:
                excluded += row[label]
            else:
                compared += row[label]
                matching += row[label] * (winners[0] == label)
    return matching, compared, excluded


def recount_loo_by_annotator(votes: pd.DataFrame):
    by_image = defaultdict(list)
    for image, annotator, label in votes.itertuples(index=False):
        by_image[image].append((annotator, label))
    tally = defaultdict(lambda: [0, 0])  # annotator -> [matching, compared]
    for entries in by_image.values():
        for annotator, label in entries:
            others = Counter(lab for name, lab in entries if name != annotator)
            if not others:
                continue
            ranked = others.most_common()
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                continue
            tally[annotator][1] += 1
            tally[annotator][0] += ranked[0][0] == label
    return {name: m / c for name, (m, c) in tally.items()}


def check_against_recount(votes: pd.DataFrame, counts: pd.DataFrame):
    """Every agreement figure of ``metrics`` on ``votes`` against the independent recount."""
    assert (
        vote_tables.vote_counts(votes, BIN3)
        .sort_index()
        .equals(counts.sort_index().astype(np.int64).rename_axis("image"))
    )

    majority, tied = recount_majority(counts)
    summary = vote_tables.vote_summary(votes, BIN3)
    assert summary == {
        "n_images": len(counts),
        "n_annotators": 10,
        "n_votes": int(counts.to_numpy().sum()),
        "n_ties": len(tied),
    }

    decided = counts.loc[list(majority)]
    thesis = counted(agreement_stats.agreement_accuracy_from_counts, votes, BIN3)
    assert thesis.n_matching == decided.max(axis=1).sum()
    assert thesis.n_compared == decided.to_numpy().sum()
    assert thesis.n_excluded == counts.loc[tied].to_numpy().sum()

    loo = counted(agreement_stats.loo_agreement_from_counts, votes, BIN3)
    assert (loo.n_matching, loo.n_compared, loo.n_excluded) == recount_loo(counts)
    assert loo.accuracy < thesis.accuracy  # own vote no longer counts

    by_annotator = agreement_stats.loo_agreement_by_annotator(votes, BIN3)
    assert {k: v.accuracy for k, v in by_annotator.items()} == pytest.approx(
        recount_loo_by_annotator(votes)
    )

    # Fleiss' kappa: statsmodels on the images with all 10 votes (equal raters) ...
    full = counts[counts.sum(axis=1) == 10]
    full_votes = votes[votes["image"].isin(full.index)]
    assert counted(agreement_stats.fleiss_kappa_from_counts, full_votes, BIN3) == pytest.approx(
        sm_fleiss_kappa(full.to_numpy()), abs=1e-12
    )

    # ... Krippendorff's alpha: the package on the counts and on the annotator x image matrix.
    alpha = counted(agreement_stats.krippendorff_alpha_from_counts, votes, BIN3)
    assert alpha == pytest.approx(
        krippendorff.alpha(
            value_counts=counts.to_numpy(dtype=float), level_of_measurement="nominal"
        ),
        abs=1e-12,
    )
    codes = votes.assign(code=votes["label"].map(BIN3.index)).pivot(
        index="annotator", columns="image", values="code"
    )
    assert alpha == pytest.approx(
        krippendorff.alpha(codes.to_numpy(dtype=float), level_of_measurement="nominal"), abs=1e-12
    )

    # Cohen's kappa of every pair against statsmodels on the crosstab of shared images.
    table = votes.pivot(index="image", columns="annotator", values="label")
    for pair in agreement_stats.pairwise_cohens_kappa(votes, BIN3):
        both = table[[pair.a, pair.b]].dropna()
        crosstab = pd.crosstab(both[pair.a], both[pair.b]).reindex(
            index=BIN3, columns=BIN3, fill_value=0
        )
        assert pair.n_images == len(both)
        assert pair.kappa == pytest.approx(sm_cohens_kappa(crosstab.to_numpy()).kappa, abs=1e-12)

    # The auto holdout: median of the recounted per-annotator figures, and its paired set.
    ranked = sorted((acc, name) for name, acc in recount_loo_by_annotator(votes).items())
    holdout = agreement_stats.choose_holdout(votes, BIN3)
    assert holdout == ranked[(len(ranked) - 1) // 2][1]
    split = heldout_scoring.holdout_split(votes, BIN3, holdout)
    mine = votes[votes["annotator"] == holdout].set_index("image")["label"]
    rest = votes[votes["annotator"] != holdout].groupby("image")["label"].apply(list).to_dict()
    expected_images, expected_reference, n_tied = [], [], 0
    for image in sorted(mine.index):
        others = Counter(rest.get(image, [])).most_common()
        if not others:
            continue
        if len(others) > 1 and others[0][1] == others[1][1]:
            n_tied += 1
            continue
        expected_images.append(image)
        expected_reference.append(others[0][0])
    assert split.images == expected_images
    assert split.reference == expected_reference
    assert len(split.tied) == n_tied
    human = split.score(split.human_predictions)
    assert human.accuracy == pytest.approx(
        np.mean([mine[img] == ref for img, ref in zip(expected_images, expected_reference)])
    )
    assert human.accuracy == pytest.approx(by_annotator[holdout].accuracy)
    return split


# --------------------------------------------------------------------------- metrics on real votes


def test_metrics_on_the_committed_ferplus_sample(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    split = check_against_recount(votes, binned_counts(ferplus_sample_csv))
    assert split.n_images > 350
    # Fleiss' kappa and Krippendorff's alpha depend only on the per-image counts, so
    # these values of Gwet's irrCAC (Python 0.4.4, CAC(...).fleiss(), .krippendorff(),
    # varying votes per image) hold whatever the shuffle.
    assert counted(agreement_stats.fleiss_kappa_from_counts, votes, BIN3) == pytest.approx(0.592516794907, abs=1e-11)
    assert counted(agreement_stats.krippendorff_alpha_from_counts, votes, BIN3) == pytest.approx(0.598201491133, abs=1e-11)


@pytest.mark.full_data
def test_metrics_on_all_public_test_rows(full_ferplus):
    votes = ferplus_votes(full_ferplus, usage="PublicTest")
    counts = binned_counts(full_ferplus, usage="PublicTest")
    assert len(counts) == 3579  # 3,589 PublicTest rows, 10 of them without an expression vote
    split = check_against_recount(votes, counts)
    assert split.n_images > 3300  # the held-out tagger has no vote on ~4 % of images (unknown, NF)
    assert counted(agreement_stats.fleiss_kappa_from_counts, votes, BIN3) == pytest.approx(0.618547284956, abs=1e-11)
    assert counted(agreement_stats.krippendorff_alpha_from_counts, votes, BIN3) == pytest.approx(0.626794375263, abs=1e-11)
    # The crowd's agreement in the thesis' sense lands near the thesis' own 85 %.
    assert counted(agreement_stats.agreement_accuracy_from_counts, votes, BIN3).accuracy == pytest.approx(0.858, abs=0.001)
