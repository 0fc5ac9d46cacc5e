"""Planning a study: how many images and annotators a panel comparison needs.

Pure functions, no Django. The panel compares a model with J annotators (``significance_tests.
panel_test``, Obuchowski-Rockette-Hillis): per annotator j, d_j = model accuracy - j's
accuracy on j's paired images; the test uses the mean of d_j with

    se^2 = (MS_R + J max(Cov2, 0)) / J,    df = (J - 1) ((MS_R + J max(Cov2, 0)) / MS_R)^2

(Hillis 2007), MS_R the variance of d_j over annotators and Cov2 the covariance of two
annotators' d over the images (jackknife). Power follows Hillis, Obuchowski and Berbaum
(2011, "Power estimation for multireader ROC methods: an updated and unified approach",
Academic Radiology 18(2)): the variance components of a pilot study are estimated, the
error terms are scaled to the planned number of images K (they shrink as 1/K), the
expected mean squares of the planned study give the noncentrality and Hillis' degrees of
freedom, and power is the noncentral t's (their noncentral F with one numerator degree of
freedom is its square). The components, for one model against the panel:

    var_error (Var):  the variance of one annotator's d over image samples (jackknife)
    cov2 (Cov2):      the covariance of two annotators' d over the same image samples
    var_reader:       the variance of the annotators' true d:  E[MS_R] - (Var - Cov2)

A planned study is fully crossed (every annotator labels the K images), as Hillis et al.
assume; a pilot of another shape gives its components per image it paired on average.

Non-inferiority within a margin M (the model is not worse than the annotators by more
than M) is the one-sided test of d >= -M: t = (mean d + M) / se.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import nct, norm
from scipy.stats import t as student_t

from .significance_tests import accuracy_jackknife

DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
MAX_IMAGES = 1_000_000


@dataclass(frozen=True)
class Components:
    """A pilot's variance components of the panel difference, at ``n_images`` images."""

    var_reader: float
    var_error: float
    cov2: float
    n_images: float  # images per annotator in the pilot, on average
    n_annotators: int
    difference: float  # the pilot's mean difference, model - annotators
    human_accuracy: float
    model_accuracy: float

    def scaled(self, n_images: float) -> tuple[float, float]:
        """(Var, Cov2) for ``n_images`` images per annotator: both shrink as 1 / images."""
        factor = self.n_images / n_images
        return self.var_error * factor, self.cov2 * factor


def components(human_correct: np.ndarray, model_correct: np.ndarray, paired: np.ndarray) -> Components:
    """The variance components of a pilot panel (annotators x images, as ``significance_tests.panel_test``)."""
    human_acc, human_jack = accuracy_jackknife(human_correct, paired)
    model_acc, model_jack = accuracy_jackknife(model_correct, paired)
    d, jack = model_acc - human_acc, model_jack - human_jack
    n_readers, n_cases = jack.shape
    if n_readers < 2:
        raise ValueError("a pilot needs two annotators or more with paired images")
    centred = jack - jack.mean(axis=1, keepdims=True)
    cov = (n_cases - 1) / n_cases * (centred @ centred.T)
    var_error = float(np.mean(np.diag(cov)))
    cov2 = float(cov[np.triu_indices(n_readers, k=1)].mean())
    ms_reader = float(np.var(d, ddof=1))
    return Components(
        var_reader=max(0.0, ms_reader - (var_error - cov2)), var_error=var_error, cov2=cov2,
        n_images=float(paired.sum(axis=1).mean()), n_annotators=n_readers, difference=float(d.mean()),
        human_accuracy=float(human_acc.mean()), model_accuracy=float(model_acc.mean()),
    )


@dataclass(frozen=True)
class PlannedTest:
    """The expected panel test of a planned study."""

    n_annotators: int
    n_images: int
    se: float
    df: float


def planned_test(c: Components, n_annotators: int, n_images: float) -> PlannedTest:
    """The expected standard error and Hillis degrees of freedom of the panel test with
    ``n_annotators`` annotators who each label ``n_images`` images."""
    if n_annotators < 2:
        raise ValueError("the panel test needs two annotators or more")
    var_error, cov2 = c.scaled(n_images)
    ms_reader = c.var_reader + var_error - cov2
    denominator = ms_reader + n_annotators * max(cov2, 0.0)
    se = math.sqrt(max(denominator, 0.0) / n_annotators)
    df = (n_annotators - 1) * (denominator / ms_reader) ** 2 if ms_reader > 0 else math.inf
    return PlannedTest(n_annotators, int(round(n_images)), se, df)


def power(c: Components, n_annotators: int, n_images: float, difference: float,
          alpha: float = DEFAULT_ALPHA, margin: float | None = None) -> float:
    """Power of the panel test at a true difference ``difference`` (model - annotators):
    two-sided at ``alpha`` to find a difference, or, with ``margin``, one-sided at
    ``alpha`` to show non-inferiority within the margin."""
    test = planned_test(c, n_annotators, n_images)
    if test.se == 0:
        return 1.0 if (difference + (margin or 0)) != 0 else alpha
    df = min(test.df, 1e7)  # scipy's noncentral t wants a finite df; 1e7 is the normal
    if margin is not None:
        critical = student_t.ppf(1 - alpha, df)
        return _upper(critical, df, (difference + margin) / test.se)
    critical = student_t.ppf(1 - alpha / 2, df)
    ncp = difference / test.se
    return _upper(critical, df, ncp) + _upper(critical, df, -ncp)


def _upper(critical: float, df: float, ncp: float) -> float:
    """P(T > critical) for a noncentral t; far out, where scipy's series gives up (NaN), the
    noncentral t is the normal shifted by ncp."""
    value = float(nct.sf(critical, df, ncp))
    return value if math.isfinite(value) else float(norm.sf(critical - ncp))


def images_needed(c: Components, n_annotators: int, difference: float, target: float = DEFAULT_POWER,
                  alpha: float = DEFAULT_ALPHA, margin: float | None = None,
                  max_images: int = MAX_IMAGES) -> int | None:
    """The fewest images per annotator that reach ``target`` power; None when even
    ``max_images`` do not (annotator variance the images cannot remove)."""
    if power(c, n_annotators, max_images, difference, alpha, margin) < target:
        return None
    low, high = 2, max_images
    while low < high:  # power grows with the images
        middle = (low + high) // 2
        if power(c, n_annotators, middle, difference, alpha, margin) >= target:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass(frozen=True)
class PlanRow:
    n_annotators: int
    images_needed: int | None
    power_at_pilot_images: float


def plan(c: Components, annotators: Sequence[int], difference: float, target: float = DEFAULT_POWER,
         alpha: float = DEFAULT_ALPHA, margin: float | None = None) -> list[PlanRow]:
    """For each number of annotators: the images needed, and the power with the pilot's images."""
    return [PlanRow(j, images_needed(c, j, difference, target, alpha, margin),
                    power(c, j, c.n_images, difference, alpha, margin)) for j in annotators]


# --------------------------------------------------------------------------- without a pilot


@dataclass(frozen=True)
class Assumptions:
    """A study stated in numbers instead of a pilot (``simulation.Accuracy`` draws it): the
    annotators' accuracies against the truth spread evenly between ``low`` and ``high``, the
    model's accuracy, and a share of hard images on which everyone drops by ``hard_drop``
    (what makes the annotators' and the model's errors go together). The defaults resemble
    the FER+ panel of this project's README: annotators 75 to 90 % (the held-out a07 82.8 %
    against the others' majority), a model as good as their mean, one image in five hard."""

    low: float = 0.75
    high: float = 0.90
    model_accuracy: float | None = None
    hard_share: float = 0.2
    hard_drop: float = 0.3

    def accuracy(self):
        from .simulation import Accuracy

        return Accuracy(self.low, self.high, self.hard_share, self.hard_drop, self.model_accuracy)


def assumed_components(assumptions: Assumptions, n_annotators: int = 10, n_images: int = 300,
                       pilots: int = 100, seed: int = 0) -> Components:
    """Components from simulated pilots of the stated study (fully crossed, ``n_annotators`` x
    ``n_images``), averaged over ``pilots`` of them: the annotators' own variance is a
    variance of few numbers per pilot, and a few pilots would leave it uncertain by a third."""
    from .simulation import Design, panel_matrices_of, simulate_study

    design = Design("pilot", n_annotators, n_images, None)
    accuracy = assumptions.accuracy()
    found = []
    for sequence in np.random.SeedSequence(seed).spawn(pilots):
        matrices = panel_matrices_of(simulate_study(np.random.default_rng(sequence), design, accuracy))
        found.append(components(matrices.human_correct, matrices.model_correct["model"], matrices.paired))

    def mean(name: str) -> float:
        return float(np.mean([getattr(c, name) for c in found]))

    # A model as good as the annotators' mean has a true difference of exactly 0 (see
    # simulation.py); otherwise the pilots' mean difference against the others' majority.
    difference = 0.0 if assumptions.model_accuracy is None else mean("difference")
    return Components(var_reader=mean("var_reader"), var_error=mean("var_error"), cov2=mean("cov2"),
                      n_images=mean("n_images"), n_annotators=n_annotators, difference=difference,
                      human_accuracy=mean("human_accuracy"), model_accuracy=mean("model_accuracy"))


def observed_power(assumptions: Assumptions, n_annotators: int, n_images: int, alpha: float = DEFAULT_ALPHA,
                   margin: float | None = None, replicates: int = 400, seed: int = 0) -> tuple[float, int]:
    """The share of simulated studies of this size whose panel test rejects (finds a
    difference, or shows non-inferiority within ``margin``): the planner's check."""
    from .significance_tests import noninferiority_panel, panel_test
    from .simulation import Design, panel_matrices_of, simulate_study

    design = Design("planned", n_annotators, n_images, None)
    accuracy = assumptions.accuracy()
    rejected = done = 0
    for sequence in np.random.SeedSequence([seed, n_annotators, n_images]).spawn(replicates):
        m = panel_matrices_of(simulate_study(np.random.default_rng(sequence), design, accuracy))
        if m.paired.shape[0] < 2:
            continue
        test = panel_test(m.human_correct, m.model_correct["model"], m.paired)
        p = noninferiority_panel(test, margin, alpha).p_value if margin is not None else test.p_value
        done += 1
        rejected += bool(p < alpha)
    return (rejected / done if done else float("nan")), done
