"""Uncertainty and tests: bootstrap intervals, McNemar's exact test, a model against a whole
panel of annotators (Obuchowski-Rockette-Hillis), and non-inferiority by a margin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest
from scipy.stats import t as student_t

DEFAULT_N_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


def _bootstrap_means(
    values: np.ndarray, n_resamples: int, seed: int | np.random.Generator, chunk: int = 256
) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement, same size) of ``values``.

    Resampled index sets depend only on ``seed`` and the number of values, so two
    vectors of the same length (human and model on one paired set) see the same resamples.
    """
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def _percentile_interval(
    values: np.ndarray, n_resamples: int, confidence: float, seed: int | np.random.Generator
) -> tuple[float, float]:
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if len(values) == 0:
        return float("nan"), float("nan")
    means = _bootstrap_means(values, n_resamples, seed)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def bootstrap_ci(
    correct: Sequence[bool] | np.ndarray,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of an accuracy, resampling images with replacement.

    2000 resamples put the 2.5 % and 97.5 % quantiles within about 0.3 points of their
    limit for a few hundred images while taking milliseconds. (NaN, NaN) for no images.
    """
    return _percentile_interval(np.asarray(correct, dtype=float), n_resamples, confidence, seed)


def paired_bootstrap_ci(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(a) - accuracy(b) on the same images.

    Both are resampled together, image by image, which keeps the pairing: the interval
    is narrower than one read off two separate intervals when a and b err on the same images.
    """
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness vectors differ in length: {len(a)} vs {len(b)}")
    return _percentile_interval(a - b, n_resamples, confidence, seed)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: ``only_a`` images a got right and b wrong, ``only_b`` the reverse."""

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(
    correct_a: Sequence[bool] | np.ndarray, correct_b: Sequence[bool] | np.ndarray
) -> McNemar:
    """Exact (binomial) McNemar test of equal accuracy on paired images.

    Under the null hypothesis each discordant image is equally likely to favour a or
    b, so only_a ~ Binomial(only_a + only_b, 1/2); two-sided. p = 1 with no discordant image.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired correctness vectors differ in length: {len(a)} vs {len(b)}")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    if only_a + only_b == 0:
        return McNemar(0, 0, 1.0)
    return McNemar(only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue))


# ------------------------------------------------------------------ a model against a panel


@dataclass(frozen=True)
class PanelTest:
    """A model against a panel of readers: Obuchowski-Rockette-Hillis (``orh_model_vs_readers``).

    ``difference`` is the mean over readers of (model - reader); ``ci`` its interval,
    ``p_value`` the two-sided test of a zero difference, on ``df`` degrees of freedom.
    """

    difference: float
    se: float
    df: float
    t: float
    p_value: float
    ci: tuple[float, float]
    n_readers: int
    n_cases: int
    ms_reader: float  # variance of the per-reader differences across readers (ddof 1)
    cov2: float  # mean covariance of two readers' differences over cases (jackknife)


def orh_model_vs_readers(
    differences: Sequence[float] | np.ndarray,
    jackknife: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PanelTest:
    """Obuchowski-Rockette-Hillis test of one model against a panel of random readers.

    ``differences[j]`` is the model's figure of merit minus reader j's (here: accuracy on
    reader j's paired images against reader j's reference); ``jackknife[j, k]`` is the
    same difference with case k left out (the value itself where k is not among reader
    j's cases). Readers and cases are both treated as samples: the case covariances come
    from the jackknife, the reader variance from the spread of the differences, and the
    denominator degrees of freedom are Hillis' (2007). This is the single-modality
    "standalone model vs readers" form of Chakraborty (2017, Observer Performance
    Methods for Diagnostic Imaging, ch. 22), as in Google Health's ``reader_study.
    model_vs_readers_orh``, which was checked against RJafroc:

        cov = (n - 1) / n * sum_k (d_jk - mean_k d_j.)(d_j'k - mean_k d_j'.)
        cov2 = mean of cov over reader pairs j != j';  ms = var_j(d_j) (ddof 1)
        se = sqrt((ms + max(J cov2, 0)) / J);  df = (J - 1) ((ms + max(J cov2, 0)) / ms)^2
        t = mean_j d_j / se, two-sided p from Student's t(df); CI: mean +- t_(1-a/2, df) se

    Needs at least two readers and two cases; otherwise (and when the differences
    carry no variance at all) the interval and p-value are NaN.
    """
    _check_confidence(confidence)
    d = np.asarray(differences, dtype=float)
    jack = np.asarray(jackknife, dtype=float)
    if jack.ndim != 2 or jack.shape[0] != len(d):
        raise ValueError(
            f"jackknife must be readers x cases with {len(d)} rows, got shape {jack.shape}"
        )
    n_readers, n_cases = jack.shape
    difference = float(d.mean()) if n_readers else float("nan")
    nan = float("nan")
    if n_readers < 2 or n_cases < 2:
        return PanelTest(difference, nan, nan, nan, nan, (nan, nan), n_readers, n_cases, nan, nan)
    centred = jack - jack.mean(axis=1, keepdims=True)
    cov = (n_cases - 1) / n_cases * (centred @ centred.T)
    cov2 = float(cov[np.triu_indices(n_readers, k=1)].mean())
    ms_reader = float(d.var(ddof=1))
    denominator = ms_reader + max(n_readers * cov2, 0.0)
    se = float(np.sqrt(denominator / n_readers))
    if se == 0:
        return PanelTest(difference, 0.0, nan, nan, nan, (nan, nan), n_readers, n_cases,
                         ms_reader, cov2)
    df = (n_readers - 1) * (denominator / ms_reader) ** 2 if ms_reader > 0 else float("inf")
    t = difference / se
    p_value = float(2 * student_t.sf(abs(t), df))
    half = float(student_t.ppf(0.5 + confidence / 2, df)) * se
    return PanelTest(difference, se, float(df), float(t), p_value,
                     (difference - half, difference + half), n_readers, n_cases, ms_reader, cov2)


def accuracy_jackknife(
    correct: np.ndarray, paired: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of each reader on their own cases, and each one with case k left out.

    ``correct`` and ``paired`` are readers x cases; ``paired[j, k]`` says whether case k
    is among reader j's paired cases, ``correct[j, k]`` whether the answer on it was
    right (ignored where not paired). Returns (accuracy per reader, readers x cases
    accuracy with case k left out: (right_j - correct_jk) / (n_j - 1) where k is reader
    j's, their full accuracy where it is not). Every reader needs two cases or more.
    """
    paired = np.asarray(paired, dtype=bool)
    right = np.where(paired, np.asarray(correct, dtype=float), 0.0)
    n = paired.sum(axis=1)
    if (n < 2).any():
        raise ValueError("every reader needs at least two paired cases for the jackknife")
    n_right = right.sum(axis=1)
    accuracy = n_right / n
    left_out = (n_right[:, None] - right) / (n[:, None] - 1)
    return accuracy, np.where(paired, left_out, accuracy[:, None])


def panel_test(
    human_correct: np.ndarray,
    model_correct: np.ndarray,
    paired: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PanelTest:
    """A model against a panel of annotators on accuracy (``orh_model_vs_readers``).

    Rows are annotators, columns the union of their paired images. Row j holds, on
    annotator j's paired images, whether annotator j (``human_correct``) and the model
    (``model_correct``) matched annotator j's reference. The difference is the mean over
    annotators of (model accuracy - annotator accuracy), each on that annotator's images.
    """
    human_acc, human_jack = accuracy_jackknife(human_correct, paired)
    model_acc, model_jack = accuracy_jackknife(model_correct, paired)
    return orh_model_vs_readers(model_acc - human_acc, model_jack - human_jack, confidence)


# ------------------------------------------------------------------ non-inferiority


@dataclass(frozen=True)
class NonInferiority:
    """The one-sided test that the model is not worse than people by more than ``margin``:
    H0 difference <= -margin against H1 difference > -margin (difference = model - human).
    ``lower_bound`` is the one-sided (1 - alpha) confidence bound the test rests on: the
    model is non-inferior at ``alpha`` exactly when it lies above -margin."""

    margin: float
    alpha: float
    difference: float
    lower_bound: float
    t: float
    df: float
    p_value: float

    @property
    def non_inferior(self) -> bool:
        return bool(self.p_value < self.alpha)


def _check_margin(margin: float, alpha: float) -> None:
    if not margin >= 0:
        raise ValueError(f"the non-inferiority margin must be 0 or more, got {margin}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def noninferiority_paired(model_correct: np.ndarray, human_correct: np.ndarray, margin: float,
                          alpha: float = 0.05) -> NonInferiority:
    """Non-inferiority of a model to one annotator on the same images: a one-sided paired t
    test of the per-image differences (model right - annotator right, each -1, 0 or 1)
    against -margin (statsmodels' ``DescrStatsW.ttest_mean``)."""
    from statsmodels.stats.weightstats import DescrStatsW

    _check_margin(margin, alpha)
    d = np.asarray(model_correct, dtype=float) - np.asarray(human_correct, dtype=float)
    nan = float("nan")
    if len(d) < 2:
        return NonInferiority(margin, alpha, float(d.mean()) if len(d) else nan, nan, nan, nan, nan)
    stats = DescrStatsW(d)
    if stats.std == 0:  # every image the same difference: no spread to test with
        p = 0.0 if d[0] > -margin else 1.0
        return NonInferiority(margin, alpha, float(d.mean()), float(d.mean()), nan, float(len(d) - 1), p)
    t, p, df = stats.ttest_mean(value=-margin, alternative="larger")
    lower = stats.tconfint_mean(alpha=2 * alpha)[0]
    return NonInferiority(margin, alpha, float(d.mean()), float(lower), float(t), float(df), float(p))


def noninferiority_panel(test: PanelTest, margin: float, alpha: float = 0.05) -> NonInferiority:
    """Non-inferiority of a model to a panel: the panel test's own standard error and Hillis
    degrees of freedom, one-sided: t = (difference + margin) / se."""
    _check_margin(margin, alpha)
    nan = float("nan")
    if not (test.se > 0 and np.isfinite(test.df)):
        return NonInferiority(margin, alpha, test.difference, nan, nan, test.df, nan)
    t = (test.difference + margin) / test.se
    p = float(student_t.sf(t, test.df))
    lower = test.difference - float(student_t.ppf(1 - alpha, test.df)) * test.se
    return NonInferiority(margin, alpha, test.difference, lower, float(t), test.df, p)


def paired_difference_interval(model_correct: np.ndarray, human_correct: np.ndarray,
                               confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """A t interval of the mean per-image difference (model - annotator) on one annotator's
    paired images: the forest plot's row for that annotator."""
    from statsmodels.stats.weightstats import DescrStatsW

    d = np.asarray(model_correct, dtype=float) - np.asarray(human_correct, dtype=float)
    if len(d) < 2 or np.std(d) == 0:
        return (float(d.mean()), float(d.mean())) if len(d) else (float("nan"), float("nan"))
    lo, hi = DescrStatsW(d).tconfint_mean(alpha=1 - confidence)
    return float(lo), float(hi)
