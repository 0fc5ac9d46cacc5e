from django.core.management.base import BaseCommand, CommandError

from annotator.demo import load_demo
from core.errors import InputError


class Command(BaseCommand):
    help = ("Load the shipped demo study (105 real FER2013 faces, real FER+ crowd votes by "
            "annotators a01..a10) as test set 'demo', with a demo staff and annotator login. Idempotent.")

    def handle(self, *args, **options):
        try:
            report = load_demo()
        except InputError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(report.summary()))
