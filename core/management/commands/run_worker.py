import os
import threading

from django.conf import settings
from django.db import DatabaseError, connection
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from core import jobs


class Command(DatabaseWorkerCommand):
    help = ("Take the background jobs (reports, large uploads of votes or images) from the queue in "
            "the database and run them, one at a time, until stopped; jobs whose worker ended "
            "(a restart, a killed process) are queued again. Run one beside the web server (make "
            "serve-production does) and more on other machines that reach the same database.")

    def add_arguments(self, parser):
        super().add_arguments(parser)
        # a worker in production restarts by its service manager, not by watching the code
        parser.set_defaults(reload=False, startup_delay=False)

    def handle(self, *args, **options):
        from config.gunicorn import limit_inference_threads

        limit_inference_threads(int(os.environ.get("TORCH_THREADS", "1")))
        recovered = jobs.recover_lost()
        if recovered:
            self.stdout.write(f"{recovered} job(s) whose worker had ended were queued again (or given up).")
        threading.Thread(target=self._recover_now_and_then, name="recover-lost-jobs", daemon=True).start()
        super().handle(*args, **options)

    @staticmethod
    def _recover_now_and_then():
        """A job whose worker (this one or another) ended is queued again, not left running."""
        stop = threading.Event()
        try:
            while not stop.wait(min(60, max(1, settings.JOB_STALE_SECONDS / 2))):
                try:
                    jobs.recover_lost()
                except DatabaseError:
                    pass  # the database is away for a moment: next time
        finally:
            connection.close()
