from django.core.management.base import BaseCommand, CommandError

from annotator.exporting import export_testset
from annotator.testsets import resolve_testset
from core.errors import InputError


class Command(BaseCommand):
    help = (
        "Export a test set's majority labels: OUT.csv (one row per image, metadata in "
        "OUT.json beside it) or OUT.zip (labels.csv, labels.json and the images in "
        "negative/ neutral/ positive/ and tie/ folders)."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", help="file to write, ending in .csv or .zip")
        parser.add_argument("--testset", help="test set name (needed when there are several)")
        parser.add_argument("--balanced", action="store_true",
                            help="same number of images per label, by seeded random omission; ties left out")
        parser.add_argument("--seed", type=int, default=0, help="seed of the balancing omission (default 0)")

    def handle(self, *args, **options):
        try:
            testset = resolve_testset(options["testset"])
            export = export_testset(testset, options["out"], balanced=options["balanced"], seed=options["seed"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        counts = ", ".join(f"{n} {name}" for name, n in export.metadata["counts"].items())
        self.stdout.write(self.style.SUCCESS(
            f"Wrote {len(export.rows)} image(s) of test set {testset.name!r} to {options['out']} ({counts})."
        ))
