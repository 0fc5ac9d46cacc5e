from django.db import transaction


def delete_image_file(sender, instance, **kwargs):
    """Remove the stored file with its row, once the deletion is committed."""
    if instance.file:
        storage, name = instance.file.storage, instance.file.name
        transaction.on_commit(lambda: storage.delete(name))
