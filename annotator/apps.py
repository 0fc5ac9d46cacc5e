from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Annotator"

    def ready(self):
        from core import jobs

        from .import_jobs import (
            IMAGE_IMPORT_JOB,
            VOTE_IMPORT_JOB,
            image_import_job,
            remove_uploaded_images,
            remove_uploaded_votes,
            vote_import_job,
        )
        from .models import Image
        from .signals import count_image_change, delete_image_file

        post_delete.connect(delete_image_file, sender=Image, dispatch_uid="annotator.delete_image_file")
        post_save.connect(count_image_change, sender=Image, dispatch_uid="annotator.count_added_image")
        post_delete.connect(count_image_change, sender=Image, dispatch_uid="annotator.count_removed_image")
        jobs.register(VOTE_IMPORT_JOB, vote_import_job, cleanup=remove_uploaded_votes)
        jobs.register(IMAGE_IMPORT_JOB, image_import_job, cleanup=remove_uploaded_images)
