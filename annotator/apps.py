from django.apps import AppConfig
from django.db.models.signals import post_delete


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Annotator"

    def ready(self):
        from . import jobs
        from .importing import VOTE_IMPORT_JOB, vote_import_job
        from .models import Image
        from .signals import delete_image_file

        post_delete.connect(delete_image_file, sender=Image, dispatch_uid="annotator.delete_image_file")
        jobs.register(VOTE_IMPORT_JOB, vote_import_job)
