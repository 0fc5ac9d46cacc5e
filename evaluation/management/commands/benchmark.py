import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluation.benchmark_core import AUTO, DEFAULT_MIN_IMAGES
from evaluation.heldout_scoring import MAJORITY, REFERENCES
from evaluation.report import format_report_text, render_report_html
from evaluation.services import BenchmarkError, check_margin, no_model_message, run_benchmark
from ferml.modelfiles import available_models


class TerminalProgress:
    """The benchmark's progress as bars on a terminal: one per stage that counts (each
    model's images with their rate), a line for the others."""

    def __init__(self, out):
        self.out, self.bar, self.stage = out, None, None

    def __call__(self, stage: str, done: int = 0, total: int | None = None) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            if total:
                self.bar = tqdm(total=total, desc=stage, unit="img", file=self.out, leave=False)
            else:
                self.out.write(f"{stage}...\n")
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = (
        "Hold one annotator out (or, with --holdout all, every annotator in turn), score "
        "that person and trained models on the same images against the majority (or the "
        "Dawid-Skene estimate) of the other annotators, and print the report (thesis 9.6)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--model", action="append", dest="models", metavar="NAME",
            help="model name (NAME.pt in $FERML_MODEL_DIR or the shipped weights), a checkpoint or "
                 "ONNX file, or NAME=FILE to give a file a name in the report; repeat for several "
                 "(default: every shipped model)",
        )
        parser.add_argument("--testset", metavar="NAME",
                            help="test set name (needed when there are several)")
        parser.add_argument("--holdout", default=AUTO, metavar="USERNAME|auto|all",
                            help="annotator to hold out (default: auto, the median "
                                 "leave-one-out agreement); all: every annotator in turn, "
                                 "and each model against the whole panel")
        parser.add_argument("--reference", default=MAJORITY, choices=REFERENCES,
                            help="reference label of an image: the majority of the other "
                                 "annotators (default) or the Dawid-Skene estimate from "
                                 "their votes")
        parser.add_argument("--min-images", type=int, default=DEFAULT_MIN_IMAGES, metavar="N",
                            help="with --holdout all, annotators with fewer paired images are "
                                 "listed but left out of the means "
                                 f"(default: {DEFAULT_MIN_IMAGES})")
        parser.add_argument("--labels", default=None, metavar="SCHEME|bin3|pos2",
                            help="label set to score in: the test set's own scheme (the default), or a "
                                 "bin set its labels map into (an emotion study in bin3 or pos2: the "
                                 "votes are binned after they were cast)")
        parser.add_argument("--predictions", action="append", default=[], metavar="NAME=FILE.csv",
                            help="a model that ran elsewhere: its answers per image key (image,label or image "
                                 "and one probability column per class); repeat for several")
        parser.add_argument("--margin", type=float, metavar="POINTS",
                            help="non-inferiority margin in percentage points, chosen before the study: "
                                 "adds a one-sided test that the model is not worse than people by more")
        parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
        parser.add_argument("--html", metavar="FILE",
                            help="also write a self-contained HTML report")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the bootstrap confidence intervals (default: 0)")

    def handle(self, *args, **options):
        files = []
        for given in options["predictions"]:
            name, sep, path = given.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise CommandError(f"--predictions {given!r}: write it as NAME=FILE.csv.")
            files.append((name.strip(), path.strip()))
        models = options["models"] or ([] if files else available_models())
        if not models and not files:
            raise CommandError(
                no_model_message() + "\nOr name a checkpoint file with --model PATH."
            )
        # the stream under Django's wrapper: the bars rewrite their line, which the wrapper's
        # added line ends would break
        terminal = getattr(self.stderr, "_out", self.stderr)
        bars = TerminalProgress(terminal) if terminal.isatty() else None
        try:
            result = run_benchmark(
                options["testset"], models, holdout=options["holdout"],
                labels=options["labels"], seed=options["seed"],
                reference=options["reference"], min_images=options["min_images"],
                margin=check_margin(options["margin"]), prediction_files=files, progress=bars,
            )
        except BenchmarkError as err:
            raise CommandError(str(err)) from None
        finally:
            if bars is not None:
                bars.close()
        self.stdout.write(format_report_text(result), ending="")
        if options["json"]:
            text = json.dumps(result, indent=2, allow_nan=False) + "\n"
            self._write(options["json"], text, "JSON")
        if options["html"]:
            self._write(options["html"], render_report_html(result), "HTML")

    def _write(self, path, text, kind):
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise CommandError(
                f"Cannot write the {kind} report to {path}: {err.strerror}."
            ) from None
        self.stdout.write(f"{kind} report written to {path}")
