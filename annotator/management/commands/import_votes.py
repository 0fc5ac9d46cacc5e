from django.core.management.base import BaseCommand, CommandError

from annotator.vote_import import import_votes
from core.errors import InputError


class Command(BaseCommand):
    help = (
        "Import votes from a csv with the columns image,annotator,label (UTF-8). Unknown "
        "annotators get accounts without a usable password. Any bad row stops the import "
        "and nothing from the file is stored; rows naming a file that import_testset skipped "
        "as a repeat of another image are listed and left out."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv", help="votes file: image,annotator,label")
        parser.add_argument("--testset", help="test set name (needed when there are several)")
        parser.add_argument("--overwrite", action="store_true",
                            help="replace stored votes that the file contradicts (recorded as changes)")

    def handle(self, *args, **options):
        try:
            report = import_votes(options["csv"], testset=options["testset"], overwrite=options["overwrite"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        for line in report.problems():
            self.stderr.write(self.style.WARNING(line))
        self.stdout.write(self.style.SUCCESS(report.summary()))
