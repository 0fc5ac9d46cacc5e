"""Production: every secret, host and the database come from the environment.

Started by ``scripts/serve-production.sh`` (gunicorn, config/gunicorn.py) behind a TLS
proxy; README "Production: serving a real study" walks through it.
"""
import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403


def _require(name: str, example: str = "") -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"Set the {name} environment variable for production{example}.")
    return value


SECRET_KEY = _require("SECRET_KEY")
# Never the embedded SQLite file by accident: the database is named on purpose
# (postgres://..., or sqlite:////absolute/path for a study on one machine).
_require("DATABASE_URL", " (for example postgres://fer:PASSWORD@127.0.0.1:5432/fer)")
# Each server thread keeps its database connection between requests (PostgreSQL starts a
# process for every new connection, which would cost more than a vote), checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DB_CONN_MAX_AGE", "600"))  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405
DEBUG = os.environ.get("DEBUG", "0") == "1"
# Background jobs are taken by worker processes (`manage.py run_worker`, started beside the
# web server by scripts/serve-production.sh), not by threads of the web server.
JOBS_WORKER_IN_PROCESS = os.environ.get("JOBS_WORKER_IN_PROCESS", "0") == "1"
ALLOWED_HOSTS = [h.strip() for h in _require("ALLOWED_HOSTS").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = os.environ.get("SECURE_SSL_REDIRECT", "1") == "1"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The proxy (README's nginx example) sets X-Forwarded-For to the client's address; the
# login throttle counts failures per account and that address (django-ipware reads it;
# without it every attempt would count against the proxy's address). gunicorn listens on
# loopback only, so no client reaches the app without the proxy. The right-most address is
# the one the proxy saw itself: a proxy that appends to a client's own header instead of
# replacing it still cannot be told another address.
AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
AXES_IPWARE_PROXY_ORDER = "right-most"

# Server errors (a 500's traceback) go to stderr, which gunicorn writes to its error log;
# 4xx answers are in gunicorn's access log already.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": os.environ.get("DJANGO_LOG_LEVEL", "ERROR")},
    },
}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
