from django.core.management.base import BaseCommand, CommandError

from evaluation import planning
from evaluation.benchmark_core import DEFAULT_MIN_IMAGES
from evaluation.report import plan_lines
from evaluation.services import BenchmarkError, check_margin, pilot_components


class Command(BaseCommand):
    help = ("Plan a study before it starts: for each number of annotators, the images that give the "
            "power to find a difference between a model and the annotators (or to show the model "
            "non-inferior within a margin), from a pilot study's variance components or from stated "
            "accuracies (Hillis, Obuchowski and Berbaum 2011).")

    def add_arguments(self, parser):
        parser.add_argument("--pilot", metavar="TESTSET", help="a stored study with votes, used as the pilot")
        parser.add_argument("--model", metavar="NAME", help="with --pilot: the model the pilot compares")
        parser.add_argument("--labels", help="with --pilot: the labels to score in (default: the scheme)")
        parser.add_argument("--min-images", type=int, default=DEFAULT_MIN_IMAGES,
                            help="with --pilot: paired images an annotator needs to count")
        parser.add_argument("--difference", type=float, metavar="POINTS",
                            help="the true difference model - annotators to plan for, in percentage points "
                                 "(default: the pilot's, or the one the stated accuracies give)")
        parser.add_argument("--margin", type=float, metavar="POINTS",
                            help="plan to show non-inferiority within this margin (one-sided at alpha / 2)")
        parser.add_argument("--alpha", type=float, default=planning.DEFAULT_ALPHA)
        parser.add_argument("--power", type=float, default=planning.DEFAULT_POWER)
        parser.add_argument("--annotators", type=int, nargs="+", default=[5, 10, 20, 40], metavar="J")
        defaults = planning.Assumptions()
        parser.add_argument("--annotator-accuracy", type=float, nargs=2, metavar=("LOW", "HIGH"),
                            default=[defaults.low, defaults.high],
                            help="without a pilot: the annotators' accuracies against the truth, spread evenly "
                                 f"(default {defaults.low:g} to {defaults.high:g})")
        parser.add_argument("--model-accuracy", type=float,
                            help="without a pilot: the model's accuracy against the truth (default: the "
                                 "annotators' mean)")
        parser.add_argument("--hard-share", type=float, default=defaults.hard_share,
                            help=f"without a pilot: the share of hard images (default {defaults.hard_share:g})")
        parser.add_argument("--hard-drop", type=float, default=defaults.hard_drop,
                            help=f"without a pilot: how much everyone's accuracy drops on them "
                                 f"(default {defaults.hard_drop:g})")
        parser.add_argument("--seed", type=int, default=0, help="without a pilot: the simulated pilots' seed")

    def handle(self, *args, **options):
        try:
            if not 0 < options["alpha"] < 1 or not 0 < options["power"] < 1:
                raise BenchmarkError("--alpha and --power are shares between 0 and 1, e.g. 0.05 and 0.8.")
            if any(j < 2 for j in options["annotators"]):
                raise BenchmarkError("--annotators: the panel test needs 2 annotators or more.")
            margin = check_margin(options["margin"])
            if options["pilot"]:
                if not options["model"]:
                    raise BenchmarkError("--pilot needs --model NAME: the model the pilot compares with its annotators.")
                source = f"pilot {options['pilot']} with {options['model']}"
                components = pilot_components(options["pilot"], options["model"], options["labels"],
                                              options["min_images"])
            else:
                low, high = options["annotator_accuracy"]
                try:
                    assumptions = planning.Assumptions(low, high, options["model_accuracy"], options["hard_share"],
                                                       options["hard_drop"])
                    assumptions.accuracy()
                except ValueError as exc:
                    raise BenchmarkError(f"The stated accuracies are not usable: {exc}.") from None
                source = "stated accuracies (100 simulated pilots of 10 annotators x 300 images)"
                components = planning.assumed_components(assumptions, seed=options["seed"])
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from None
        difference = components.difference if options["difference"] is None else options["difference"] / 100
        alpha = options["alpha"] / 2 if margin is not None else options["alpha"]
        rows = planning.plan(components, options["annotators"], difference, options["power"], alpha, margin)
        for line in plan_lines(components, rows, difference, options["power"], alpha, margin, source):
            self.stdout.write(line)
