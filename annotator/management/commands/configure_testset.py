from django.core.management.base import BaseCommand, CommandError

from annotator.testsets import check_overlap, describe_design, do_set_overlap, resolve_testset
from core.errors import InputError

from .import_testset import add_overlap_arguments


class Command(BaseCommand):
    help = ("Show a test set's design, or change how its images are served: votes per image from a "
            "pool, adaptive overlap, control images. The label scheme is fixed at creation.")

    def add_arguments(self, parser):
        parser.add_argument("--testset", help="test set name (default: the only one)")
        add_overlap_arguments(parser, defaults=False)
        parser.add_argument("--everyone", action="store_true",
                            help="every annotator labels every image again (no votes per image)")

    def handle(self, *args, **options):
        try:
            testset = resolve_testset(options["testset"])
            changes = {k: options[k] for k in ("votes_per_image", "max_votes", "stop", "control_rate",
                                               "control_feedback") if options[k] is not None}
            if changes or options["everyone"]:
                votes = None if options["everyone"] else changes.get("votes_per_image", testset.votes_per_image)
                maximum = changes.get("max_votes", testset.max_votes_per_image if "votes_per_image" not in changes
                                      else None)
                overlap = check_overlap(votes, None if votes is None else maximum,
                                        changes.get("stop", testset.adaptive_stop),
                                        changes.get("control_rate", testset.control_rate),
                                        changes.get("control_feedback", testset.control_feedback))
                do_set_overlap(testset, overlap)
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_design(testset))
