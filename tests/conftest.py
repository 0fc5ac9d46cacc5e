"""Shared fixtures: paths to the committed real samples and to the full shared data."""
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = TESTS_DIR / "data"
SHARED_DATA = TESTS_DIR.parent.parent / "shared" / "data"
FER2013_FULL = SHARED_DATA / "fer2013" / "fer2013.csv.gz"
FERPLUS_FULL = SHARED_DATA / "ferplus" / "fer2013new.csv"


@pytest.fixture(scope="session")
def fer_sample_csv() -> Path:
    """440 real FER2013 rows (300 PublicTest, 20 Training per emotion), Kaggle layout plus ``row``."""
    return SAMPLE_DIR / "fer2013_sample.csv.gz"


@pytest.fixture(scope="session")
def ferplus_sample_csv() -> Path:
    """The FER+ vote lines of the same rows, with their ``row`` number."""
    return SAMPLE_DIR / "ferplus_sample.csv"


@pytest.fixture(scope="session")
def full_fer2013() -> Path:
    if not FER2013_FULL.exists():
        pytest.skip(f"full FER2013 data not present at {FER2013_FULL}")
    return FER2013_FULL


@pytest.fixture(scope="session")
def full_ferplus() -> Path:
    if not FERPLUS_FULL.exists():
        pytest.skip(f"full FER+ votes not present at {FERPLUS_FULL}")
    return FERPLUS_FULL


@pytest.fixture
def background_jobs(settings):
    """Jobs go onto the queue in the database and a worker thread of this process runs them,
    as in the demo; the worker stops when the test ends."""
    from core import jobs

    settings.JOBS_IN_BACKGROUND = True
    settings.JOBS_WORKER_IN_PROCESS = True
    yield
    jobs.in_process_worker.stop()
