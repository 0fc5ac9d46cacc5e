from django.core.management.base import BaseCommand, CommandError

from annotator.exporting import export_votes
from annotator.testsets import resolve_testset
from core.errors import InputError


class Command(BaseCommand):
    help = "Write every vote of a test set as image,annotator,label: the file import_votes reads back."

    def add_arguments(self, parser):
        parser.add_argument("out", help="csv file to write")
        parser.add_argument("--testset", help="test set name (needed when there are several)")

    def handle(self, *args, **options):
        try:
            testset = resolve_testset(options["testset"])
            n = export_votes(testset, options["out"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Wrote {n} vote(s) of test set {testset.name!r} to {options['out']}."))
