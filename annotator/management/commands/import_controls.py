from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotator.controls import import_controls
from annotator.testsets import resolve_testset
from core.errors import InputError


class Command(BaseCommand):
    help = ("Mark control images: a csv of image,label rows (the label spelled as in a votes file). "
            "Control images are served among the others and left out of every statistic.")

    def add_arguments(self, parser):
        parser.add_argument("csv", help="csv with the columns image,label")
        parser.add_argument("--testset", help="test set name (default: the only one)")

    def handle(self, *args, **options):
        path = Path(options["csv"])
        try:
            testset = resolve_testset(options["testset"])
            if not path.is_file():
                raise InputError(f"{path} does not exist or is not a file.")
            result = import_controls(path.read_bytes(), testset, str(path))
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(result.summary()))
