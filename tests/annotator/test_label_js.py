"""label.js, run by Node against a fake page: the keys of the page's buttons (1/2/3 here), u
and s send the right requests."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

NODE = shutil.which("node")
HARNESS = Path(__file__).parent / "js" / "label_harness.js"


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_keys_drive_votes_undo_and_skip():
    script = Path(settings.BASE_DIR) / "static" / "annotator" / "label.js"
    result = subprocess.run([NODE, str(HARNESS), str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    sent = [(s["method"], s["url"], s["body"]) for s in run["sent"]]
    # "1" votes negative; "2" pressed while that request runs is dropped (no double vote);
    # "3" votes positive on the image the server sent next; ctrl+2 and typing in a field do nothing.
    assert sent == [
        ("POST", "/label/t/vote/", {"image": "11", "label": "negative", "shown": "token-11", "time_spent_ms": "800"}),
        ("POST", "/label/t/vote/", {"image": 12, "label": "positive", "shown": "token-12", "time_spent_ms": "700"}),
        ("POST", "/label/t/undo/", {}),
        ("GET", "/label/t/?skip=14", None),
    ]
    assert all(s["headers"] == {"Accept": "application/json", "X-CSRFToken": "csrf-123"} for s in run["sent"])
    # The next image is fetched ahead of time and then shown.
    assert run["preloaded"][0] == "/images/12/"
    assert run["img"] == "/images/15/" and run["image"] == 15 and run["shown"] == "token-15"
