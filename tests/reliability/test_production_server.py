"""The production server as a lab starts it: ``scripts/serve-production.sh`` (make
serve-production), gunicorn's threaded workers, the production settings and a database of
its own. While live-demo streams play, annotators' votes are answered; one stream more
than LIVE_MAX_STREAMS gets a 503; each stream ends at LIVE_MAX_STREAM_SECONDS.

The server gets one worker of 4 threads here, so 2 streams leave exactly 2 threads: with
gunicorn's sync workers (one request at a time) the votes would wait for the streams.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from scripts.http_client import HttpClient
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.annotator.helpers import write_faces
from tests.live.conftest import demo_clip  # noqa: F401  (the clip of demo faces, reused)
from tests.live.test_views import query

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "serve-production.sh"
STREAM_SECONDS = 20
STAFF, ANNOTATOR = ("chief", "pw-chief-7Qx"), ("ann", "pw-ann-7Qx")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(tmp_path: Path, **extra) -> dict:
    """The variables a lab sets, pointing at folders and a database of this test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "LIVE_"))}
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'study.sqlite3'}",
        "SECURE_SSL_REDIRECT": "0",  # no TLS proxy in front here
        "STATIC_ROOT": str(tmp_path / "static"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LIVE_VIDEO_DIR": str(tmp_path / "live"),
        "LIVE_SLOT_DIR": str(tmp_path / "live-slots"),
        "OMP_NUM_THREADS": "1",
    } | extra


class OverPlainHttp(http.cookiejar.DefaultCookiePolicy):
    """Production cookies are Secure; without the TLS proxy they are sent over http anyway."""

    def return_ok_secure(self, cookie, request):
        return True


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"])
def test_the_one_command_refuses_to_start_without_a_required_setting(tmp_path, missing):
    env = production_env(tmp_path)
    del env[missing]
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: Set the {missing} environment variable for production")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "study.sqlite3").exists()  # nothing was set up


def test_gunicorn_refuses_a_stream_cap_that_could_take_every_thread(tmp_path):
    env = production_env(tmp_path, GUNICORN_BIND=f"127.0.0.1:{free_port()}", WEB_CONCURRENCY="1",
                         GUNICORN_THREADS="2", LIVE_MAX_STREAMS="2")
    done = subprocess.run([str(ROOT / ".venv/bin/gunicorn"), "--config", "config/gunicorn.py"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3  # gunicorn's "worker failed to boot"
    assert "LIVE_MAX_STREAMS=2 must be below the threads per worker (GUNICORN_THREADS=2" in done.stderr


class Viewer:
    """A stream read to its end in a thread of its own, as a browser plays it."""

    def __init__(self, client: HttpClient, params: dict):
        self.started = time.monotonic()
        self.response = client.open("GET", f"/live/stream.mjpg?{urlencode(params)}", as_json=False, timeout=120)
        self.status = self.response.status
        self.received, self.ended = 0, None
        if self.status == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()

    def _read(self):
        with self.response:
            while chunk := self.response.read1(65536):
                self.received += len(chunk)
        self.ended = time.monotonic()


@pytest.fixture
def server(tmp_path, fer_faces, demo_clip):  # noqa: F811
    """The server started by the one command, with staff, an annotator and 4 faces to label."""
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "demo-faces.avi").write_bytes(demo_clip.read_bytes())
    write_faces(tmp_path / "faces", fer_faces[20:24], subfolders=False)
    port = free_port()
    env = production_env(tmp_path, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1",
                         GUNICORN_THREADS="4", LIVE_MAX_STREAMS="2",
                         LIVE_MAX_STREAM_SECONDS=str(STREAM_SECONDS))
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen([str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start in 5 minutes"
                time.sleep(0.5)
        setup = (
            "from django.contrib.auth import get_user_model\n"
            "from annotator.image_import import import_testset\n"
            f"get_user_model().objects.create_user({STAFF[0]!r}, password={STAFF[1]!r}, is_staff=True)\n"
            f"get_user_model().objects.create_user({ANNOTATOR[0]!r}, password={ANNOTATOR[1]!r})\n"
            f"import_testset({str(tmp_path / 'faces')!r}, name='faces')\n"
        )
        subprocess.run([sys.executable, "manage.py", "shell", "-c", setup], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=300)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_votes_are_answered_while_live_streams_play_on_the_production_server(server):
    staff = HttpClient(server, *STAFF, policy=OverPlainHttp())
    annotator = HttpClient(server, *ANNOTATOR, policy=OverPlainHttp())
    assert staff.log_in().endswith("/staff/")
    assert annotator.log_in().endswith("/label/faces/")
    # collectstatic ran: the page's stylesheet, under its hashed name, is served.
    page = staff.send("GET", "/staff/", as_json=False)[2]
    stylesheet = re.search(r'href="(/static/site\.[0-9a-f]+\.css)"', page).group(1)
    status, _, css = staff.send("GET", stylesheet, as_json=False)
    assert status == 200 and "body" in css

    looping = {**query("demo-faces.avi"), "loop": "on"}
    viewers = [Viewer(staff, looping) for _ in range(2)]
    assert [v.status for v in viewers] == [200, 200]
    status, _, body = staff.send("GET", f"/live/stream.mjpg?{urlencode(looping)}", as_json=False)
    assert status == 503 and "already plays 2 stream(s)" in body

    state = json.loads(annotator.send("GET", "/label/faces/")[2])
    before = [v.received for v in viewers]
    for label in ["negative", "neutral", "positive", "neutral"]:
        started = time.monotonic()
        status, _, body = annotator.send("POST", "/label/faces/vote/",
                                         {"image": state["current"]["id"], "label": label}, timeout=30)
        assert status == 200, body
        assert time.monotonic() - started < 10, "a vote waited for the streams"
        state = json.loads(body)
    assert state["progress"] == {"done": 4, "total": 4}
    assert all(v.ended is None for v in viewers), "the streams stopped before the votes were in"
    # and the streams go on sending frames: a slow machine may not have sent one during the votes
    deadline = time.monotonic() + STREAM_SECONDS / 2
    while not all(v.received > b for v, b in zip(viewers, before)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(v.received > b for v, b in zip(viewers, before)), "a stream stopped sending frames"

    for viewer in viewers:  # each stream ends by itself at its length limit
        viewer.thread.join(timeout=STREAM_SECONDS + 120)
        assert viewer.ended is not None
        assert STREAM_SECONDS <= viewer.ended - viewer.started < STREAM_SECONDS + 60
    with staff.open("GET", f"/live/stream.mjpg?{urlencode(looping)}", as_json=False) as again:
        assert again.status == 200  # each gave its thread and its slot back

    # The one command started the background jobs' worker too: it takes the report's job.
    choices = urlencode({"holdout": "auto", "reference": "majority", "min_images": 2, "labels": "bin3",
                         "models": "bkvgg12_ferplus", "seed": 0})
    deadline = time.monotonic() + 120
    while True:
        status, _, body = staff.send("GET", f"/evaluation/faces/report.json?{choices}", as_json=False)
        if status != 202 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # one annotator's votes: the worker ran the report, which says why it cannot pair them
    assert status == 400 and "No annotator can be held out" in json.loads(body)["error"]


def test_each_worker_runs_its_models_on_torch_threads_threads(monkeypatch):
    """config/gunicorn.py: after a worker boots, PyTorch and OpenCV use TORCH_THREADS threads
    (1 by default), so a live stream's model cannot take every core from the votes."""
    import runpy

    import cv2
    import torch

    monkeypatch.delenv("TORCH_THREADS", raising=False)
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.py"))["torch_threads"] == 1
    monkeypatch.setenv("TORCH_THREADS", "3")
    config = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        config["limit_inference_threads"](config["torch_threads"])
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (3, 3)
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
