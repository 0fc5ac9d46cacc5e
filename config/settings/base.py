"""Settings shared by every environment."""
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Runtime state (SQLite file, media, reports) lives here, outside version control.
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-local-development-key-change-me")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "axes",  # login throttling
    "csp",  # the Content-Security-Policy header
    "django_tasks",  # Django 6's tasks API, backported: background jobs (core/jobs.py)
    "django_tasks_db",  # ... queued in the database, taken by `manage.py run_worker`
]
LOCAL_APPS = [
    "core",
    "annotator",
    "evaluation",
    "live",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    # First: its time covers every other middleware and the view (a Server-Timing header).
    "core.timing.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is the embedded default; DATABASE_URL (e.g. postgres://user:pw@host/db) selects another.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # No JIT compilation: it pays off for long analytical queries, while this app's take
    # milliseconds and compiling one (when the planner over-estimates) takes tens more.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent annotators: wait for the write lock instead of failing at once, and take
    # it when a transaction starts so a read-then-write (a vote) never hits "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses every login of an account locked out from this address (django-axes).
    "core.access.ThrottledLoginBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords for one account from
# one address lock that account out from that address for AXES_COOLOFF_MINUTES; a lab
# behind one NAT address is not locked out by one annotator's typos. A successful login
# clears the count; `manage.py axes_reset_username NAME` (or `axes_reset`) lifts a lock.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]

MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Videos the live demo may play; staff can open no other file on the server.
LIVE_VIDEO_DIR = Path(os.environ.get("LIVE_VIDEO_DIR", VAR_DIR / "live"))
# Network cameras the live demo may open: host names, addresses or networks (CIDR),
# comma-separated. Empty: none. A loopback, private or otherwise non-public address is
# refused unless it (or its network) is listed itself.
LIVE_STREAM_HOSTS = [h.strip() for h in os.environ.get("LIVE_STREAM_HOSTS", "").split(",") if h.strip()]
# Each Motion-JPEG stream holds a server thread while it plays: at most this many play at
# once on the server, all its processes together (keep it below the threads per process,
# config/gunicorn.py checks), and each stops after this many seconds. The processes count
# them with a lock file per stream in LIVE_SLOT_DIR (live/streams.py).
LIVE_MAX_STREAMS = int(os.environ.get("LIVE_MAX_STREAMS", "2"))
LIVE_SLOT_DIR = Path(os.environ.get("LIVE_SLOT_DIR", VAR_DIR / "live-slots"))
LIVE_MAX_STREAM_SECONDS = float(os.environ.get("LIVE_MAX_STREAM_SECONDS", "600"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Uploaded zips of a test set can be large; files above this go to a temp file.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# A larger upload is refused with a message, and none of it is kept (annotator/uploads.py);
# larger test sets are imported on the server with `manage.py import_testset`.
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", str(512 * 1024 * 1024)))
FILE_UPLOAD_HANDLERS = [
    "annotator.uploads.SizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# A votes csv uploaded on the staff page that is larger than this is imported in the
# background (core/jobs.py), by the same function as `manage.py import_votes`.
VOTE_UPLOAD_IN_REQUEST_MAX_BYTES = int(os.environ.get("VOTE_UPLOAD_IN_REQUEST_MAX_BYTES", str(1024 * 1024)))
# A zip of images larger than this is imported in the background too.
IMAGE_UPLOAD_IN_REQUEST_MAX_BYTES = int(os.environ.get("IMAGE_UPLOAD_IN_REQUEST_MAX_BYTES", str(20 * 1024 * 1024)))

# Background jobs (core/jobs.py): large uploads of votes or images and the benchmark
# report go onto a queue in the database (Django's tasks API, django-tasks-db); a worker
# takes them one at a time: `manage.py run_worker` (make serve-production starts one beside
# the web server; more can run on other machines), or, with JOBS_WORKER_IN_PROCESS (the
# demo and development), a thread of the web server itself. Their pages show the progress,
# then the stored result. A running job with no heartbeat for JOB_STALE_SECONDS lost its
# worker and is queued again (at most three runs in all).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
JOBS_IN_BACKGROUND = True
JOBS_WORKER_IN_PROCESS = os.environ.get("JOBS_WORKER_IN_PROCESS", "1") == "1"
JOB_STALE_SECONDS = int(os.environ.get("JOB_STALE_SECONDS", "120"))
# The report page waits this long for a report it has just started before showing progress.
REPORT_WAIT_SECONDS = float(os.environ.get("REPORT_WAIT_SECONDS", "5"))

# Content-Security-Policy (django-csp): pages load scripts, styles and images from this
# server only; no inline script or style runs. Report figures are data: PNGs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
