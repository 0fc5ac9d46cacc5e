from django.core.management.base import BaseCommand, CommandError

from annotator.image_import import import_testset
from annotator.overlap import STOP_RULES, UNANIMOUS
from annotator.testsets import check_label_scheme, check_overlap
from core.errors import InputError
from ferml.labels import CUSTOM_SCHEME, EXTRA_ANSWERS, SCHEMES


def add_overlap_arguments(parser, defaults: bool = True):
    """--votes-per-image, --max-votes, --stop, --control-rate, --control-feedback."""
    parser.add_argument("--votes-per-image", type=int, metavar="N",
                        help="votes each image gets from a pool of annotators (default: every annotator "
                             "labels every image)")
    parser.add_argument("--max-votes", type=int, metavar="M",
                        help="adaptive overlap: an image stops at N votes by --stop, otherwise it gets up to M")
    parser.add_argument("--stop", choices=STOP_RULES, default=UNANIMOUS if defaults else None,
                        help="adaptive stop rule: unanimous (every vote agrees) or decided (no vote up to M "
                             "could change the majority); default unanimous")
    parser.add_argument("--control-rate", type=int, metavar="K", default=20 if defaults else None,
                        help="serve one control image in K (0: none); default 20")
    parser.add_argument("--control-feedback", action="store_true", default=None,
                        help="after a vote on a control image, show the expected answer (a training phase)")


class Command(BaseCommand):
    help = (
        "Import a folder or a .zip of images as a test set. An image's key is its relative "
        "path; bad files are reported and skipped; running it again changes nothing. A new "
        "test set takes its label scheme and its votes per image from the options."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="folder or .zip of images")
        parser.add_argument("--name", help="test set name (default: the folder or zip name)")
        parser.add_argument("--detect-faces", action="store_true",
                            help="crop the largest face found by OpenCV's frontal-face detector")
        parser.add_argument("--min-face", type=int, default=0, metavar="PX",
                            help="with --detect-faces, skip faces smaller than PX pixels (the thesis used 100)")
        parser.add_argument("--labels", default=None, metavar="SCHEME",
                            help=f"what annotators vote in: {', '.join(SCHEMES)} (default bin3) or "
                                 f"{CUSTOM_SCHEME} with --custom-labels; fixed once the test set exists")
        parser.add_argument("--custom-labels", default="", metavar="A,B,...",
                            help="with --labels custom: the labels in order, comma-separated (2 to 9)")
        parser.add_argument("--extras", default="", metavar="NAMES",
                            help=f"extra answers beside the labels, comma-separated: {', '.join(EXTRA_ANSWERS)}")
        add_overlap_arguments(parser)

    def handle(self, *args, **options):
        try:
            scheme = None
            if options["labels"] or options["custom_labels"] or options["extras"]:
                scheme = check_label_scheme(options["labels"] or "bin3", options["custom_labels"], options["extras"])
            overlap = check_overlap(options["votes_per_image"], options["max_votes"], options["stop"],
                                    options["control_rate"], bool(options["control_feedback"]))
            report = import_testset(options["path"], name=options["name"], detect_faces=options["detect_faces"],
                                    min_face=options["min_face"], scheme=scheme, overlap=overlap)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        for line in report.problems():
            self.stderr.write(self.style.WARNING(line))
        self.stdout.write(self.style.SUCCESS(report.summary()))
