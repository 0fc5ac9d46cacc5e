"""Coverage of the panel comparison's 95 % interval, checked by simulation.

The panel comparison (``evaluation.benchmark_core.panel_block`` on the splits of
``evaluation.heldout.panel_splits``) holds out each annotator in turn, scores the
annotator and the model against the majority of the other annotators on the held-out
annotator's images, and tests the mean over annotators of (model - annotator) with the
Obuchowski-Rockette-Hillis (ORH) method, covariances by jackknife over images. This
script simulates studies in which that difference is zero by construction, runs exactly
those project functions on each, and counts how often the 95 % interval contains 0.

Simulation model
----------------
* K = 3 labels (negative, neutral, positive). Each image's true label is drawn
  uniformly from the three.
* Each study draws every annotator's accuracy p_j independently, uniform on
  [--acc-low, --acc-high] (default [0.70, 0.90], mean 0.80). On an image an annotator
  answers the true label with probability p_j, otherwise one of the two other labels,
  each with probability (1 - p_j) / 2. Answers are independent given the truth.
* The model answers the true label with probability p_model = the mean of that
  accuracy distribution (0.80), otherwise one of the other labels uniformly,
  independently of the annotators.
* Variant "hard" (image difficulty, a random case effect): each image is hard with
  probability --hard-share (0.2); on a hard image everyone's accuracy, the model's
  included, drops by --hard-drop (0.3). Variant "plain" has no hard images.

Why the true panel difference is exactly 0: take annotator j and one of their images.
The reference is the majority of the other annotators' votes; it does not involve j's
answer or the model's, and whether it exists (ties and images nobody else labelled are
left out) does not either. Given the reference, an answerer of accuracy q on that image
matches it with probability q if the reference is the true label and (1 - q) / 2 if it is
a wrong one (wrong answers are spread evenly over the wrong labels), which is linear in
q. So the model's expected accuracy minus annotator j's on j's images is
(p_model - p_j) * c_j, where c_j = E[(3 A - 1) / 2] and A says the reference is right;
the difficulty drop is shared by both and cancels. c_j depends only on the other
annotators, the design and the images, all independent of p_j, so over studies
E[(p_model - p_j) c_j] = (p_model - E p_j) E[c_j] = 0. ORH treats annotators and images
as random samples, so its interval aims at exactly this population mean: a 95 % interval
should contain 0 in 95 % of studies.

Designs
-------
* crowd: --crowd-annotators (40) annotators, --crowd-images (3000) images, and
  --votes-per-image (10) distinct annotators per image, drawn at random for each image
  (about 750 images per annotator; not exactly balanced).
* crossed: --crossed-annotators (10) annotators each label all --crossed-images (300)
  images, like the project's demo studies.

Printed
-------
For each design and variant: the number of replicates, the coverage (share of
intervals containing 0) with its own 95 % Wilson interval, the rejection rate at
alpha 0.05 (1 - coverage), the mean estimated difference (near 0 if unbiased) with its
Monte Carlo standard error, the standard deviation of the estimates across studies
beside the mean ORH standard error (these two should agree), the mean interval width,
the mean ORH degrees of freedom, and the seconds taken.

Usage (from the repository root):

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.simulate_panel_coverage \\
        --replicates 500 --seed 0 --design crowd --variant both --workers 2
    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.simulate_panel_coverage \\
        --replicates 2000 --seed 0 --design crossed --variant both --workers 2

Cost: a crowd replicate takes about 1 s on one core, nearly all of it in
``panel_splits`` (40 held-out splits, each validating and counting all 30,000 votes);
a crossed replicate about 0.07 s.

Each replicate has its own seed spawned from --seed, so the figures do not depend on
--workers.
"""
from __future__ import annotations

import argparse
import math
import time
from multiprocessing import Pool

import numpy as np
from scipy.stats import t as student_t
from statsmodels.stats.proportion import proportion_confint

from evaluation.simulation import Accuracy, Design, Replicate, panel_replicate, simulate_study

DESIGNS = ("crowd", "crossed")
VARIANTS = ("plain", "hard")
NAN = float("nan")


def run_replicate(task: tuple[np.random.SeedSequence, Design, Accuracy, int]) -> Replicate:
    """One seeded study and its test (top level so that worker processes can run it)."""
    seed, design, accuracy, min_images = task
    return panel_replicate(simulate_study(np.random.default_rng(seed), design, accuracy),
                           min_images)


def run_design(
    seeds: list[np.random.SeedSequence],
    design: Design,
    accuracy: Accuracy,
    min_images: int,
    workers: int,
) -> list[Replicate]:
    tasks = [(s, design, accuracy, min_images) for s in seeds]
    if workers <= 1:
        return [run_replicate(t) for t in tasks]
    with Pool(workers) as pool:
        return pool.map(run_replicate, tasks, chunksize=max(1, len(tasks) // (8 * workers)))


def summarise(replicates: list[Replicate]) -> dict:
    """Coverage with its Wilson interval, rejection rate, bias and width of the intervals."""
    valid = [r for r in replicates if math.isfinite(r.lo) and math.isfinite(r.hi)]
    n = len(valid)
    covered = sum(r.covers_zero for r in valid)
    lo, hi = proportion_confint(covered, n, alpha=0.05, method="wilson") if n else (NAN, NAN)
    diffs = np.array([r.difference for r in valid])
    # The ORH standard error, recovered from the interval: half-width / t quantile.
    se = np.array(
        [r.width / 2 / student_t.ppf(0.975, r.df if math.isfinite(r.df) else np.inf)
         for r in valid]
    )
    return {
        "replicates": len(replicates),
        "valid": n,
        "coverage": covered / n if n else NAN,
        "coverage_ci": (lo, hi),
        "rejection": 1 - covered / n if n else NAN,
        "mean_difference": float(diffs.mean()) if n else NAN,
        "mc_se_difference": float(diffs.std(ddof=1) / math.sqrt(n)) if n > 1 else NAN,
        "sd_difference": float(diffs.std(ddof=1)) if n > 1 else NAN,
        "mean_se": float(se.mean()) if n else NAN,
        "mean_width": float(np.mean([r.width for r in valid])) if n else NAN,
        "mean_df": float(np.nanmean([r.df for r in valid])) if n else NAN,
    }


def format_table(title: str, summary: dict, seconds: float) -> str:
    lo, hi = summary["coverage_ci"]
    rows = [
        ("replicates (valid)", f"{summary['replicates']} ({summary['valid']})"),
        ("coverage of 0", f"{summary['coverage']:.3f}  (95% Wilson {lo:.3f}-{hi:.3f})"),
        ("rejection rate, alpha 0.05", f"{summary['rejection']:.3f}"),
        ("mean difference", f"{summary['mean_difference']:+.5f}  "
                            f"(MC s.e. {summary['mc_se_difference']:.5f})"),
        ("SD of differences", f"{summary['sd_difference']:.5f}"),
        ("mean ORH s.e.", f"{summary['mean_se']:.5f}"),
        ("mean CI width", f"{summary['mean_width']:.5f}"),
        ("mean df", f"{summary['mean_df']:.1f}"),
        ("seconds", f"{seconds:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def designs_from(args: argparse.Namespace) -> list[Design]:
    every = {
        "crowd": Design("crowd", args.crowd_annotators, args.crowd_images, args.votes_per_image),
        "crossed": Design("crossed", args.crossed_annotators, args.crossed_images, None),
    }
    return [every[name] for name in (DESIGNS if args.design == "both" else (args.design,))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--design", choices=(*DESIGNS, "both"), default="both")
    parser.add_argument("--variant", choices=(*VARIANTS, "both"), default="both")
    parser.add_argument("--crowd-annotators", type=int, default=40)
    parser.add_argument("--crowd-images", type=int, default=3000)
    parser.add_argument("--votes-per-image", type=int, default=10)
    parser.add_argument("--crossed-annotators", type=int, default=10)
    parser.add_argument("--crossed-images", type=int, default=300)
    parser.add_argument("--acc-low", type=float, default=0.70)
    parser.add_argument("--acc-high", type=float, default=0.90)
    parser.add_argument("--hard-share", type=float, default=0.2)
    parser.add_argument("--hard-drop", type=float, default=0.3)
    parser.add_argument("--min-images", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="processes (at most 2 advised)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    variants = VARIANTS if args.variant == "both" else (args.variant,)
    started = time.perf_counter()
    for design in designs_from(args):
        for variant in variants:
            accuracy = Accuracy(
                low=args.acc_low,
                high=args.acc_high,
                hard_share=args.hard_share if variant == "hard" else 0.0,
                hard_drop=args.hard_drop,
            )
            # Seeds from (seed, design, variant) alone: a table does not change when
            # other designs or variants are run beside it.
            key = [DESIGNS.index(design.name), VARIANTS.index(variant)]
            seeds = np.random.SeedSequence([args.seed, *key]).spawn(args.replicates)
            t0 = time.perf_counter()
            replicates = run_design(seeds, design, accuracy, args.min_images, args.workers)
            seconds = time.perf_counter() - t0
            size = (f"{design.n_annotators} annotators x {design.n_images} images, "
                    + ("fully crossed" if design.votes_per_image is None
                       else f"{design.votes_per_image} votes per image"))
            title = f"{design.name} / {variant}: {size}"
            print(format_table(title, summarise(replicates), seconds), flush=True)
            print(flush=True)
    print(f"total seconds: {time.perf_counter() - started:.1f}")


if __name__ == "__main__":
    main()
