"""The human-vs-model benchmark of thesis 9.6 as one JSON-ready dict.

Pure: votes and model predictions in; plain numbers, strings and lists out (NaN becomes
None so the dict dumps as strict JSON). The Django service gathers the votes and runs
the models; the ``benchmark`` command and the staff page print or render this dict
(``evaluation.report``).

Beyond the thesis, ``holdout="all"`` adds the panel (SPEC "The panel"): every annotator
held out in turn, and each model compared with all of them at once.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import agreement_stats, heldout_scoring, significance_tests, vote_tables
from .heldout_scoring import MAJORITY
from .significance_tests import DEFAULT_CONFIDENCE, DEFAULT_N_RESAMPLES
from .vote_tables import Votes

AUTO = "auto"
ALL = "all"  # every annotator in turn: the panel
DEFAULT_MIN_IMAGES = 20  # paired images an annotator needs to count in the panel's means
PANEL_METHOD = (
    "Obuchowski-Rockette-Hillis (model vs a panel of random readers), "
    "covariances by jackknife over images"
)


@dataclass(frozen=True)
class HoldoutChoice:
    """The annotator held out, how they were chosen, and the paired images that leaves."""

    split: heldout_scoring.HeldOut
    selection: str  # AUTO or "given"


def hold_out(
    votes: Votes, labels: Sequence[str], holdout: Hashable = AUTO, reference: str = MAJORITY
) -> HoldoutChoice:
    """``holdout`` (an annotator, or ``"auto"``: ``agreement_stats.choose_holdout``, the median
    leave-one-out agreement) and their paired image set against ``reference``
    (``heldout_scoring.MAJORITY`` or ``heldout_scoring.DAWID_SKENE`` of the other annotators).

    Raises ValueError when the annotator shares no image with a reference label.
    """
    labels = list(labels)
    frame = vote_tables.as_votes(votes, labels)
    name = agreement_stats.choose_holdout(frame, labels) if holdout == AUTO else holdout
    split = heldout_scoring.holdout_split(frame, labels, name, reference)
    return _checked_choice(split, AUTO if holdout == AUTO else "given", reference)


def hold_out_all(
    votes: Votes, labels: Sequence[str], reference: str = MAJORITY
) -> tuple[HoldoutChoice, dict[Hashable, heldout_scoring.HeldOut]]:
    """The panel: every annotator's paired image set (``heldout_scoring.panel_splits``), and beside
    it the ``"auto"`` choice, whose single held-out figures the report keeps."""
    labels = list(labels)
    frame = vote_tables.as_votes(votes, labels)
    splits = heldout_scoring.panel_splits(frame, labels, reference)
    auto = splits[agreement_stats.choose_holdout(frame, labels)]
    return _checked_choice(auto, AUTO, reference), splits


def choose(votes: Votes, labels: Sequence[str], holdout: Hashable = AUTO, reference: str = MAJORITY
           ) -> tuple[HoldoutChoice, dict[Hashable, heldout_scoring.HeldOut] | None]:
    """The held-out annotator's paired images for ``holdout`` (a name, ``"auto"`` or
    ``"all"``), and with ``"all"`` every annotator's (the panel): what the benchmark scores."""
    if holdout == ALL:
        return hold_out_all(votes, labels, reference)
    return hold_out(votes, labels, holdout, reference), None


def _checked_choice(split: heldout_scoring.HeldOut, selection: str, reference: str) -> HoldoutChoice:
    if split.n_images == 0:
        what = "a majority" if reference == MAJORITY else "a Dawid-Skene label"
        raise ValueError(
            f"annotator {split.annotator!r} shares no image with {what} of the other "
            f"annotators; {len(split.tied)} tied, {len(split.unreferenced)} labelled by "
            "nobody else"
        )
    return HoldoutChoice(split, selection)


def agreement_block(votes: Votes, labels: Sequence[str]) -> dict:
    """Agreement over all annotators: the thesis' agreement accuracy (own vote counted),
    its leave-one-out form, Fleiss' kappa and Krippendorff's alpha, with the vote counts
    behind the first two. Undefined figures are None.

    The benchmark report and the staff pages (``services.agreement_summary``) both show these.
    """
    return agreement_block_from_counts(vote_tables.vote_counts(votes, labels).to_numpy())


def agreement_block_from_counts(counts: np.ndarray) -> dict:
    """``agreement_block`` from an images x labels table of vote counts: every figure in it
    depends on the counts alone, which the database can add up (``services.agreement_summary``)."""
    counts = np.asarray(counts, dtype=np.int64)
    thesis_form = agreement_stats.agreement_accuracy_from_counts(counts)
    loo = agreement_stats.loo_agreement_from_counts(counts)
    return {
        "accuracy": _number(thesis_form.accuracy),
        "loo_accuracy": _number(loo.accuracy),
        "fleiss_kappa": _number(agreement_stats.fleiss_kappa_from_counts(counts)),
        "krippendorff_alpha": _number(agreement_stats.krippendorff_alpha_from_counts(counts)),
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
    reference: str = MAJORITY,
    panel: Mapping[Hashable, heldout_scoring.HeldOut] | None = None,
    min_images: int = DEFAULT_MIN_IMAGES,
    n_images_in_testset: int | None = None,
    margin: float | None = None,
) -> dict:
    """Agreement over all annotators, then the held-out human and each model on one paired set.

    ``holdout`` is an annotator, ``"auto"`` (see ``hold_out``), ``"all"`` (the ``"auto"``
    choice plus the panel, see ``panel_block``), or the ``HoldoutChoice`` the caller
    already made on these votes (it ran the models on its images); ``panel`` holds the
    caller's ``hold_out_all`` splits, and adds the panel to any choice. ``reference`` is
    ``heldout_scoring.MAJORITY`` or ``heldout_scoring.DAWID_SKENE``. ``model_predictions`` maps a model
    name to its predictions (image -> label); each must cover every image of the paired
    sets. Every bootstrap interval uses ``seed``, so the human and all models are
    resampled on the same image sets. ``n_images_in_testset``, when given, is reported
    beside the number of images with votes. With ``margin`` (a share, chosen before the
    study), each comparison adds a one-sided non-inferiority test at (1 - confidence) / 2
    (2.5 %: the model is non-inferior exactly when the lower end of its two-sided 95 %
    interval lies above -margin, the usual convention): is the model worse than people by
    less than the margin? Raises ValueError when nothing can be scored.
    """
    labels = list(labels)
    heldout_scoring._check_reference(reference)
    _check_min_images(min_images)
    frame = vote_tables.as_votes(votes, labels)
    if isinstance(holdout, HoldoutChoice):
        choice = holdout
    else:
        choice, found = choose(frame, labels, holdout, reference)
        panel = panel if panel is not None else found
    split = choice.split
    human = split.score(split.human_predictions)

    def interval(values) -> list:
        return _numbers(significance_tests.bootstrap_ci(values, n_resamples, confidence, seed))

    models = []
    for name, predictions in (model_predictions or {}).items():
        try:
            score = split.score(predictions)
        except ValueError as err:
            raise ValueError(f"model {name!r}: {err}") from None
        test = significance_tests.mcnemar_exact(human.correct, score.correct)
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
                    significance_tests.paired_bootstrap_ci(
                        score.correct, human.correct, n_resamples, confidence, seed
                    )
                ),
                "confusion": _numbers(score.confusion),
                "confusion_counts": score.confusion_counts.tolist(),
            }
        )
        if margin is not None:
            models[-1]["noninferiority"] = _noninferiority(
                significance_tests.noninferiority_paired(score.correct, human.correct, margin, (1 - confidence) / 2),
                "one-sided paired t test of the per-image differences")

    testset = {"name": testset_name, **vote_tables.vote_summary(frame, labels)}
    design = vote_tables.design_summary(frame, labels)
    if n_images_in_testset is not None:  # n_images counts only the images with votes
        testset["n_images_with_votes"] = testset["n_images"]
        testset["n_images_in_testset"] = n_images_in_testset
    result = {
        "testset": testset,
        "labels": labels,
        "design": design,
        "reference": reference,
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
                for name, a in agreement_stats.loo_agreement_by_annotator(frame, labels).items()
            ],
            "pairwise_cohens_kappa": [
                {"a": str(p.a), "b": str(p.b), "n_images": p.n_images, "kappa": _number(p.kappa)}
                for p in agreement_stats.pairwise_cohens_kappa(frame, labels)
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
    if panel is not None:
        result["panel"] = panel_block(
            panel, model_predictions or {}, reference, min_images, confidence, margin
        )
    if margin is not None:
        result["margin"] = margin
    return result


def _noninferiority(test: significance_tests.NonInferiority, method: str) -> dict:
    return {
        "margin": test.margin, "alpha": test.alpha, "difference": _number(test.difference),
        "lower_bound": _number(test.lower_bound), "t": _number(test.t), "df": _number(test.df),
        "p_value": _number(test.p_value), "non_inferior": test.non_inferior, "method": method,
    }


def _check_min_images(min_images: int) -> None:
    if min_images < 2:
        raise ValueError(
            f"the minimum of paired images per annotator must be 2 or more, got {min_images}"
        )


def panel_block(
    splits: Mapping[Hashable, heldout_scoring.HeldOut],
    model_predictions: Mapping[str, Mapping],
    reference: str = MAJORITY,
    min_images: int = DEFAULT_MIN_IMAGES,
    confidence: float = DEFAULT_CONFIDENCE,
    margin: float | None = None,
) -> dict:
    """Every annotator held out in turn, and each model against all of them (SPEC "The panel").

    Per annotator: their paired images (``splits``, from ``hold_out_all``), their accuracy,
    each model's accuracy on the same images against the same reference, the difference
    and its exact McNemar p. Annotators with fewer than ``min_images`` paired images are
    listed with ``included`` false and left out of the rest. The panel's human accuracy
    is the unweighted mean over the included annotators; a model's is the mean of its
    accuracies on their paired sets. ``difference`` (model - human), its interval and
    p-value come from ``significance_tests.panel_test``: Obuchowski-Rockette-Hillis, which treats
    both the images and the annotators as samples.
    """
    _check_min_images(min_images)
    rows, included = [], []
    for name, split, human, by_model in panel_scores(splits, model_predictions):
        counts = split.n_images >= min_images
        rows.append(
            {
                "annotator": str(name),
                "n_images": split.n_images,
                "n_excluded_ties": len(split.tied),
                "included": counts,
                "accuracy": _number(human.accuracy),
                "models": {m: _number(s.accuracy) for m, s in by_model.items()},
                "differences": {
                    m: _number(s.accuracy - human.accuracy) for m, s in by_model.items()
                },
                "mcnemar_p": {
                    m: significance_tests.mcnemar_exact(human.correct, s.correct).p_value
                    for m, s in by_model.items()
                },
                # the forest plot's row: a t interval of the per-image differences
                "differences_ci95": {
                    m: _numbers(significance_tests.paired_difference_interval(s.correct, human.correct, confidence))
                    for m, s in by_model.items()
                },
            }
        )
        if counts:
            included.append((split, human, by_model))

    matrices = panel_matrices(included, list(model_predictions))
    paired, human_correct, model_correct = matrices.paired, matrices.human_correct, matrices.model_correct
    column = matrices.columns

    def mean(values) -> float | None:
        return _number(np.mean(values)) if included else None

    models = []
    for model in model_predictions:
        entry = {
            "name": model,
            "mean_accuracy": mean([by_model[model].accuracy for _, _, by_model in included]),
            "difference": None,
            "ci95": [None, None],
            "p_value": None,
            "t": None,
            "df": None,
        }
        if included:
            test = significance_tests.panel_test(human_correct, model_correct[model], paired, confidence)
            entry.update(
                difference=_number(test.difference),
                ci95=_numbers(test.ci),
                p_value=_number(test.p_value),
                t=_number(test.t),
                df=_number(test.df),  # infinite (no reader variance) becomes None too
            )
            if margin is not None:
                entry["noninferiority"] = _noninferiority(
                    significance_tests.noninferiority_panel(test, margin, (1 - confidence) / 2),
                    "one-sided Obuchowski-Rockette-Hillis t test (the panel's standard error and df)")
        models.append(entry)
    return {
        "reference": reference,
        "min_images": min_images,
        "method": PANEL_METHOD,
        "confidence": confidence,
        "n_annotators": len(rows),
        "n_annotators_included": len(included),
        "n_images": len(column),
        "annotators": rows,
        "human_mean_accuracy": mean([human.accuracy for _, human, _ in included]),
        "models": models,
    }


def panel_scores(splits: Mapping[Hashable, heldout_scoring.HeldOut], model_predictions: Mapping[str, Mapping]):
    """Per annotator, by name: (name, split, the annotator's score, each model's score)."""
    for name in sorted(splits, key=str):
        split = splits[name]
        human = split.score(split.human_predictions)
        by_model = {}
        for model, predictions in model_predictions.items():
            try:
                by_model[model] = split.score(predictions)
            except ValueError as err:
                raise ValueError(f"model {model!r}: {err}") from None
        yield name, split, human, by_model


@dataclass(frozen=True)
class PanelMatrices:
    """The panel as annotators x images: whether each image is among an annotator's paired
    images, and whether the annotator and each model matched that annotator's reference."""

    columns: dict  # image -> column
    paired: np.ndarray
    human_correct: np.ndarray
    model_correct: dict[str, np.ndarray]


def panel_matrices(included: Sequence[tuple], models: Sequence[str]) -> PanelMatrices:
    """One column per image paired with any included annotator, one row per annotator
    (``included``: (split, the annotator's score, each model's score) per annotator)."""
    column: dict = {}
    for split, _, _ in included:
        for image in split.images:
            column.setdefault(image, len(column))
    shape = (len(included), len(column))
    paired, human_correct = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    model_correct = {model: np.zeros(shape, dtype=bool) for model in models}
    for j, (split, human, by_model) in enumerate(included):
        columns = [column[image] for image in split.images]
        paired[j, columns] = True
        human_correct[j, columns] = human.correct
        for model, score in by_model.items():
            model_correct[model][j, columns] = score.correct
    return PanelMatrices(column, paired, human_correct, model_correct)


def _number(x: float) -> float | None:
    """A float for JSON; NaN (undefined, e.g. kappa with one label) and infinity become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def _numbers(values) -> list:
    """Nested lists of ``_number`` from an array or tuple."""
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return _number(array)
    return [_numbers(v) for v in array]
