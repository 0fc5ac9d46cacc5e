from django.core.management.base import BaseCommand

from annotator.demo import DEMO_ANNOTATOR, DEMO_STAFF


class Command(BaseCommand):
    help = "Print where the demo web app listens and its demo logins."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, **options):
        url = options["url"]
        self.stdout.write(self.style.SUCCESS(f"\nThe web app: {url}"))
        self.stdout.write(f"  staff (dashboard, report, export): {DEMO_STAFF[0]} / {DEMO_STAFF[1]}")
        self.stdout.write(f"  annotator (labelling):             {DEMO_ANNOTATOR[0]} / {DEMO_ANNOTATOR[1]}")
        self.stdout.write(f"  staff report: {url}evaluation/   live demo: {url}live/   Stop with Ctrl-C.\n")
