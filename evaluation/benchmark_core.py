"""The human-vs-model benchmark of thesis 9.6 as one JSON-ready dict.

Pure: votes and model predictions in; plain numbers, strings and lists out (NaN becomes
None so the dict dumps as strict JSON). The Django service gathers the votes and runs
the models; the ``benchmark`` command and the staff page print or render this dict
(``evaluation.report``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import metrics
from .metrics import DEFAULT_CONFIDENCE, DEFAULT_N_RESAMPLES, Votes

AUTO = "auto"


@dataclass(frozen=True)
class HoldoutChoice:
    """The annotator held out, how they were chosen, and the paired images that leaves."""

    split: metrics.HeldOut
    selection: str  # AUTO or "given"


def hold_out(votes: Votes, labels: Sequence[str], holdout: Hashable = AUTO) -> HoldoutChoice:
    """``holdout`` (an annotator, or ``"auto"``: ``metrics.choose_holdout``, the median
    leave-one-out agreement) and their paired image set.

    Raises ValueError when the annotator shares no image with a majority of the others.
    """
    labels = list(labels)
    frame = metrics.as_votes(votes, labels)
    name = metrics.choose_holdout(frame, labels) if holdout == AUTO else holdout
    split = metrics.holdout_split(frame, labels, name)
    if split.n_images == 0:
        raise ValueError(
            f"annotator {name!r} shares no image with a majority of the other annotators; "
            f"{len(split.tied)} tied, {len(split.unreferenced)} labelled by nobody else"
        )
    return HoldoutChoice(split, AUTO if holdout == AUTO else "given")


def agreement_block(votes: Votes, labels: Sequence[str]) -> dict:
    """Agreement over all annotators: the thesis' agreement accuracy (own vote counted),
    its leave-one-out form, Fleiss' kappa and Krippendorff's alpha, with the vote counts
    behind the first two. Undefined figures are None.

    The benchmark report and the staff pages (``services.agreement_summary``) both show these.
    """
    labels = list(labels)
    frame = metrics.as_votes(votes, labels)
    thesis_form = metrics.agreement_accuracy(frame, labels)
    loo = metrics.loo_agreement(frame, labels)
    return {
        "accuracy": _number(thesis_form.accuracy),
        "loo_accuracy": _number(loo.accuracy),
        "fleiss_kappa": _number(metrics.fleiss_kappa(frame, labels)),
        "krippendorff_alpha": _number(metrics.krippendorff_alpha(frame, labels)),
        "n_votes_compared": thesis_form.n_compared,
        "n_votes_excluded_ties": thesis_form.n_excluded,
        "loo_n_compared": loo.n_compared,
        "loo_n_excluded": loo.n_excluded,
    }


def build_benchmark_result(
    votes: Votes,
    labels: Sequence[str],
    holdout: Hashable | HoldoutChoice = AUTO,
    model_predictions: Mapping[str, Mapping] | None = None,
    testset_name: str = "",
    seed: int = 0,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict:
    """Agreement over all annotators, then the held-out human and each model on one paired set.

    ``holdout`` is an annotator, ``"auto"`` (see ``hold_out``), or the ``HoldoutChoice``
    the caller already made on these votes (it ran the models on its images).
    ``model_predictions`` maps a model name to its predictions (image -> label); each
    must cover every image of the paired set. Every bootstrap interval uses ``seed``, so
    the human and all models are resampled on the same image sets. Raises ValueError
    when nothing can be scored.
    """
    labels = list(labels)
    frame = metrics.as_votes(votes, labels)
    choice = holdout if isinstance(holdout, HoldoutChoice) else hold_out(frame, labels, holdout)
    split = choice.split
    human = split.score(split.human_predictions)

    def interval(values) -> list:
        return _numbers(metrics.bootstrap_ci(values, n_resamples, confidence, seed))

    models = []
    for name, predictions in (model_predictions or {}).items():
        try:
            score = split.score(predictions)
        except ValueError as err:
            raise ValueError(f"model {name!r}: {err}") from None
        test = metrics.mcnemar_exact(human.correct, score.correct)
        models.append(
            {
                "name": name,
                "n_images": score.n_images,
                "n_correct": score.n_correct,
                "accuracy": _number(score.accuracy),
                "ci95": interval(score.correct),
                "mcnemar_p": test.p_value,
                "mcnemar_only_human": test.only_a,
                "mcnemar_only_model": test.only_b,
                "diff_vs_human": _number(score.accuracy - human.accuracy),
                "diff_vs_human_ci95": _numbers(
                    metrics.paired_bootstrap_ci(
                        score.correct, human.correct, n_resamples, confidence, seed
                    )
                ),
                "confusion": _numbers(score.confusion),
                "confusion_counts": score.confusion_counts.tolist(),
            }
        )

    return {
        "testset": {"name": testset_name, **metrics.vote_summary(frame, labels)},
        "labels": labels,
        "agreement": {
            **agreement_block(frame, labels),
            "per_annotator": [
                {
                    "annotator": str(name),
                    "n_votes": a.n_compared + a.n_excluded,
                    "n_compared": a.n_compared,
                    "n_matching": a.n_matching,
                    "loo_accuracy": _number(a.accuracy),
                }
                for name, a in metrics.loo_agreement_by_annotator(frame, labels).items()
            ],
            "pairwise_cohens_kappa": [
                {"a": str(p.a), "b": str(p.b), "n_images": p.n_images, "kappa": _number(p.kappa)}
                for p in metrics.pairwise_cohens_kappa(frame, labels)
            ],
        },
        "holdout": {
            "annotator": str(split.annotator),
            "selection": choice.selection,
            "n_images": split.n_images,
            "n_excluded_ties": len(split.tied),
            "n_excluded_no_reference": len(split.unreferenced),
            "n_correct": human.n_correct,
            "accuracy": _number(human.accuracy),
            "ci95": interval(human.correct),
            "confusion": _numbers(human.confusion),
            "confusion_counts": human.confusion_counts.tolist(),
        },
        "models": models,
        "bootstrap": {
            "method": "percentile",
            "n_resamples": n_resamples,
            "confidence": confidence,
            "seed": seed,
        },
    }


def _number(x: float) -> float | None:
    """A float for JSON; NaN (undefined, e.g. kappa with one label) becomes None."""
    x = float(x)
    return None if math.isnan(x) else x


def _numbers(values) -> list:
    """Nested lists of ``_number`` from an array or tuple."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return _number(array)
    return [_numbers(v) for v in array]
