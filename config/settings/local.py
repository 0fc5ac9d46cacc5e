"""Local development and the demo: debug on, SQLite unless DATABASE_URL says otherwise."""
import os

from .base import *  # noqa: F401,F403

DEBUG = os.environ.get("DEBUG", "1") == "1"
