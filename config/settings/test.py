"""Fast, isolated settings for the test suite."""
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Jobs run at once, inside the request that starts them, so a test sees their result (and
# the test's own transaction); tests of the background path switch this on themselves.
JOBS_IN_BACKGROUND = False
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="fer-test-media-"))
# The live demo's stream slots of this test run only (another run may play at the same time).
LIVE_SLOT_DIR = Path(tempfile.mkdtemp(prefix="fer-test-live-slots-"))
# An existing, empty folder: WhiteNoise warns about a missing one on every new handler,
# and the test server serves static files from the apps' folders anyway.
STATIC_ROOT = Path(tempfile.mkdtemp(prefix="fer-test-static-"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not ":memory:": live-server tests answer requests in several server threads,
    # and an in-memory test database would be one connection shared by all of them, which
    # hides every concurrency problem. Django deletes the file when the run ends.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.mkdtemp(prefix="fer-test-db-")) / "test.sqlite3"),
    }
