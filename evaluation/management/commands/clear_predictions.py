from django.core.management.base import BaseCommand

from evaluation.services import clear_prediction_store


class Command(BaseCommand):
    help = ("Forget every stored prediction: each model's probabilities are computed again the next "
            "time a report needs them.")

    def handle(self, *args, **options):
        self.stdout.write(f"{clear_prediction_store():,} stored prediction(s) removed.")
