"""The clip of demo faces the live demo's tests play."""
import pytest
from django.core.management import call_command


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory):
    """The clip ``make demo`` writes: one detectable demo face of each majority label."""
    out = tmp_path_factory.mktemp("demo-video") / "demo-faces.avi"
    call_command("demo_video", "--per-label", "1", "--out", str(out))
    return out
