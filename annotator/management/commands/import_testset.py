from django.core.management.base import BaseCommand, CommandError

from annotator.errors import InputError
from annotator.importing import import_testset


class Command(BaseCommand):
    help = (
        "Import a folder or a .zip of images as a test set. An image's key is its relative "
        "path; bad files are reported and skipped; running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="folder or .zip of images")
        parser.add_argument("--name", help="test set name (default: the folder or zip name)")
        parser.add_argument("--detect-faces", action="store_true",
                            help="crop the largest face found by OpenCV's frontal-face detector")
        parser.add_argument("--min-face", type=int, default=0, metavar="PX",
                            help="with --detect-faces, skip faces smaller than PX pixels (the thesis used 100)")

    def handle(self, *args, **options):
        try:
            report = import_testset(options["path"], name=options["name"],
                                    detect_faces=options["detect_faces"], min_face=options["min_face"])
        except InputError as exc:
            raise CommandError(str(exc)) from None
        for line in report.problems():
            self.stderr.write(self.style.WARNING(line))
        self.stdout.write(self.style.SUCCESS(report.summary()))
