import csv
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.testsets import resolve_testset
from core.errors import InputError
from evaluation.quality import Thresholds
from evaluation.report import quality_rows
from evaluation.services import annotator_quality


class Command(BaseCommand):
    help = ("Each annotator of a test set: votes, images, median seconds per vote, leave-one-out "
            "agreement with the others' majority (95 % Wilson interval), Cohen's kappa against it, the "
            "share of their most used answer, control accuracy, and flags with their reasons.")

    def add_arguments(self, parser):
        parser.add_argument("--testset", help="test set name (default: the only one)")
        parser.add_argument("--csv", metavar="FILE", help="also write the table as csv")
        defaults = Thresholds()
        parser.add_argument("--min-seconds", type=float, default=defaults.min_median_seconds,
                            help=f"flag a median time per vote under this (default {defaults.min_median_seconds:g} s)")
        parser.add_argument("--max-share", type=float, default=defaults.max_label_share,
                            help=f"flag one answer in more than this share of the votes (default {defaults.max_label_share:g})")

    def handle(self, *args, **options):
        try:
            testset = resolve_testset(options["testset"])
            if not 0 < options["max_share"] <= 1 or options["min_seconds"] < 0:
                raise InputError("--max-share must be above 0 and at most 1, --min-seconds 0 or more.")
            result = annotator_quality(testset, Thresholds(options["min_seconds"], options["max_share"]))
        except InputError as exc:
            raise CommandError(str(exc)) from None
        header, rows = quality_rows(result)
        widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
        for line in [header, *rows]:
            self.stdout.write("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        flagged = [row for row in result["annotators"] if row["flags"]]
        for row in flagged:
            self.stdout.write(f"{row['annotator']}: " + "; ".join(row["flags"]))
        if not flagged:
            self.stdout.write("No annotator is flagged.")
        if options["csv"]:
            path = Path(options["csv"])
            try:
                with path.open("w", newline="", encoding="utf-8") as out:
                    writer = csv.writer(out)
                    writer.writerow([*header, "flags"])
                    for line, row in zip(rows, result["annotators"]):
                        writer.writerow([*line, "; ".join(row["flags"])])
            except OSError as exc:
                raise CommandError(f"Cannot write {path}: {exc.strerror}.") from None
            self.stdout.write(f"Table written to {path}")
