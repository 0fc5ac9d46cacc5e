"""The study planner (``evaluation.planning``) against simulation.

For a stated study (``planning.Assumptions``: annotators' accuracies, the model's, a share
of hard images), the planner estimates the variance components from 100 simulated pilots of
10 annotators x 300 images and plans: for each number of annotators J, the images K that
give 80 % power. This script then simulates studies of exactly the planned sizes from the
same assumptions, runs the project's own panel test on each (``significance_tests.panel_test``; its
non-inferiority form with ``--margin``) and prints the planned power beside the share of
simulated studies that reached the test's verdict, with that share's 95 % Wilson interval.

    OMP_NUM_THREADS=1 .venv/bin/python -m scripts.check_planner --replicates 400 --seed 0

Two questions are checked: finding a difference (a model 5 points better than the
annotators' mean accuracy, two-sided at 5 %) and showing non-inferiority within 5 points
(a model as good as the annotators, one-sided at 2.5 %).
"""
from __future__ import annotations

import argparse
import time

from statsmodels.stats.proportion import proportion_confint

from evaluation import planning


def check(name: str, assumptions: planning.Assumptions, annotators: list[int], target: float, alpha: float,
          margin: float | None, replicates: int, seed: int) -> None:
    pilot = planning.assumed_components(assumptions, seed=seed)
    difference = pilot.difference
    question = (f"non-inferiority within {100 * margin:g} points, one-sided at {alpha:g}" if margin is not None
                else f"a difference, two-sided at {alpha:g}")
    print(f"{name}: {question}; expected difference against the others' majority "
          f"{100 * difference:+.1f} points (annotators {100 * pilot.human_accuracy:.1f} %, "
          f"model {100 * pilot.model_accuracy:.1f} %)")
    print(f"  {'annotators':>10}  {'images':>6}  {'planned':>7}  {'observed':>8}  {'95 % interval':>15}  {'studies':>7}")
    for n_annotators in annotators:
        images = planning.images_needed(pilot, n_annotators, difference, target, alpha, margin, max_images=20_000)
        if images is None:
            print(f"  {n_annotators:>10}  {'-':>6}  no number of images up to 20,000 reaches {target:.0%}")
            continue
        planned = planning.power(pilot, n_annotators, images, difference, alpha, margin)
        observed, done = planning.observed_power(assumptions, n_annotators, images, alpha, margin, replicates, seed)
        lo, hi = proportion_confint(round(observed * done), done, alpha=0.05, method="wilson")
        print(f"  {n_annotators:>10}  {images:>6}  {planned:>7.3f}  {observed:>8.3f}  "
              f"{f'{lo:.3f}-{hi:.3f}':>15}  {done:>7}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--annotators", type=int, nargs="+", default=[10, 20])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    defaults = planning.Assumptions()
    mean = (defaults.low + defaults.high) / 2
    check("a better model", planning.Assumptions(model_accuracy=mean + 0.05), args.annotators, 0.8, 0.05,
          None, args.replicates, args.seed)
    check("an equally good model", planning.Assumptions(), args.annotators, 0.8, 0.025, 0.05,
          args.replicates, args.seed)
    print(f"seconds: {time.perf_counter() - started:.0f}")


if __name__ == "__main__":
    main()
