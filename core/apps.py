from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app uses: background jobs, staff access, user errors, request timing."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
