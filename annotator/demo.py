"""The embedded demo study: 105 real FER2013 faces with their real FER+ crowd votes.

``load_demo`` imports ``fixtures/demo`` as the test set ``demo`` and creates two demo
logins. Loading it again changes nothing but the demo passwords, which it resets so the
printed logins always work.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from core.errors import InputError

from .image_import import ImportReport, import_testset
from .vote_import import VoteImportReport, import_votes

DEMO_DIR = Path(settings.BASE_DIR) / "fixtures" / "demo"
DEMO_TESTSET = "demo"
# Known logins for a local demo only; production settings never run load_demo.
DEMO_STAFF = ("staff", "demo-staff")
DEMO_ANNOTATOR = ("annotator", "demo-annotator")


@dataclass
class DemoReport:
    images: ImportReport
    votes: VoteImportReport

    def summary(self) -> str:
        return f"{self.images.summary()}\n{self.votes.summary()}"


def ensure_demo_logins() -> None:
    users = get_user_model()
    for (username, password), staff in ((DEMO_STAFF, True), (DEMO_ANNOTATOR, False)):
        user, _ = users.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = staff
        user.set_password(password)
        user.save()


def load_demo(fixture_dir: Path = DEMO_DIR) -> DemoReport:
    images_dir, votes_csv = fixture_dir / "images", fixture_dir / "votes.csv"
    if not images_dir.is_dir() or not votes_csv.is_file():
        raise InputError(f"The demo study is incomplete: {images_dir} and {votes_csv} must exist.")
    with transaction.atomic():
        images = import_testset(images_dir, name=DEMO_TESTSET)
        votes = import_votes(votes_csv, testset=DEMO_TESTSET)
        ensure_demo_logins()
    return DemoReport(images, votes)
