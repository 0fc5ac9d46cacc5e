from django.db import transaction
from django.db.models import F

from .models import TestSet


def delete_image_file(sender, instance, **kwargs):
    """Remove the stored file with its row, once the deletion is committed."""
    if instance.file:
        storage, name = instance.file.storage, instance.file.name
        transaction.on_commit(lambda: storage.delete(name))


def count_image_change(sender, instance, created=True, **kwargs):
    """Raise the test set's ``images_version`` when an image is added (post_save, created)
    or removed (post_delete)."""
    if created:
        TestSet.objects.filter(pk=instance.testset_id).update(images_version=F("images_version") + 1)
