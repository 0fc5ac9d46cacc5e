"""The live demo's stream cap (LIVE_MAX_STREAMS) and length limit (LIVE_MAX_STREAM_SECONDS)."""
from __future__ import annotations

import json
import threading
import time
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from annotator.image_import import import_testset
from annotator.models import Vote
from live.streams import SLOTS, LimitedStream, StreamSlots
from scripts.http_client import HttpClient
from tests.annotator.conftest import fer_faces  # noqa: F401  (the real-face fixture, reused)
from tests.annotator.helpers import write_faces

from .test_views import query, staff_client, video_dir  # noqa: F401  (fixtures, reused)


@pytest.fixture
def demo_video(video_dir, demo_clip):  # noqa: F811
    (video_dir / "demo-faces.avi").write_bytes(demo_clip.read_bytes())
    assert SLOTS.playing == 0
    yield "demo-faces.avi"
    assert SLOTS.playing == 0, "a stream kept its slot after it was closed"


class Viewer:
    """A stream played over HTTP and read as it comes, in a thread of its own, like a browser."""

    def __init__(self, client: HttpClient, params: dict):
        self.response = client.open("GET", f"{reverse('live:stream')}?{urlencode(params)}", as_json=False)
        self.status = self.response.status
        self.received = 0
        self._stop = threading.Event()
        self._thread = None
        if self.status == 200:
            assert self.response.readline() == b"--frame\r\n"
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self):
        try:
            while not self._stop.is_set():
                chunk = self.response.read1(65536)
                if not chunk:
                    break
                self.received += len(chunk)
        except OSError:
            pass
        finally:
            self.response.close()

    def leave(self):
        """The viewer closes the page: the connection goes."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)
        self.response.close()


def wait_for(condition, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.fixture
def on_the_server(live_server, demo_video, tmp_path, fer_faces, django_user_model):  # noqa: F811
    """Staff and an annotator logged in to the live server; a test set of 4 faces to label."""
    write_faces(tmp_path / "faces", fer_faces[40:44], subfolders=False)
    import_testset(tmp_path / "faces", name="faces")
    django_user_model.objects.create_user("chief", password="pw-chief-7Qx", is_staff=True)
    django_user_model.objects.create_user("ann", password="pw-ann-7Qx")
    staff, annotator = HttpClient(live_server.url, "chief", "pw-chief-7Qx"), HttpClient(live_server.url, "ann", "pw-ann-7Qx")
    staff.log_in()
    annotator.log_in()
    return staff, annotator


@pytest.mark.django_db(transaction=True)
def test_the_cap_refuses_one_stream_more_and_votes_are_answered_while_streams_play(
        on_the_server, demo_video, settings):
    staff, annotator = on_the_server
    settings.LIVE_MAX_STREAMS = 2
    looping = {**query(demo_video), "loop": "on"}
    viewers = [Viewer(staff, looping) for _ in range(2)]
    assert [v.status for v in viewers] == [200, 200] and SLOTS.playing == 2

    status, _, body = staff.send("GET", f"{reverse('live:stream')}?{urlencode(looping)}", as_json=False)
    assert (status, body) == (503, "The live demo already plays 2 stream(s), the most this server allows "
                                   "at once (LIVE_MAX_STREAMS); stop one or try again in a minute.")
    status, _, page = staff.send("GET", f"{reverse('live:index')}?{urlencode(looping)}", as_json=False)
    assert status == 503 and "already plays 2 stream(s)" in page and "live/stream.mjpg" not in page

    # While both streams play, the annotator labels every face, each vote answered at once.
    state = json.loads(annotator.send("GET", "/label/faces/")[2])
    before = [v.received for v in viewers]
    for label in ["negative", "neutral", "positive", "neutral"]:
        status, _, body = annotator.send("POST", "/label/faces/vote/",
                                         {"image": state["current"]["id"], "label": label}, timeout=30)
        assert status == 200, body
        state = json.loads(body)
    assert state["progress"] == {"done": 4, "total": 4}
    assert Vote.objects.filter(annotator__username="ann").count() == 4
    assert wait_for(lambda: all(v.received > b for v, b in zip(viewers, before)))  # still playing

    viewers.pop().leave()  # one viewer goes away: its slot is free again, and another plays
    assert wait_for(lambda: SLOTS.playing == 1)
    viewers.append(Viewer(staff, looping))
    assert viewers[-1].status == 200
    for viewer in viewers:
        viewer.leave()
    assert wait_for(lambda: SLOTS.playing == 0)


@pytest.mark.django_db
def test_a_stream_stops_after_its_length_limit(staff_client, demo_video, settings):  # noqa: F811
    settings.LIVE_MAX_STREAM_SECONDS = 1.0
    started = time.monotonic()
    response = staff_client.get(reverse("live:stream"), {**query(demo_video), "loop": "on"})
    parts = list(response.streaming_content)  # a looping video would play forever
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 20
    # Played at the video's own 15 frames a second: about 15 frames in the second it had.
    assert 5 <= len(parts) <= 17, len(parts)
    assert SLOTS.playing == 0


@pytest.mark.django_db
def test_a_refused_source_gives_its_slot_back(staff_client, video_dir, settings):  # noqa: F811
    settings.LIVE_MAX_STREAMS = 1
    (video_dir / "broken.mp4").write_bytes(b"\x00" * 2048)
    for _ in range(2):  # the second would be a 503 if the first had kept the slot
        assert staff_client.get(reverse("live:stream"), query("broken.mp4")).status_code == 400
    assert SLOTS.playing == 0


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_limited_stream_gives_its_slot_back_exactly_once():
    released = []
    clock = Clock()
    stream = LimitedStream(iter([b"a", b"b", b"c"]), 10, lambda: released.append(1), clock)
    assert next(stream) == b"a"
    clock.now += 10  # time is up
    assert list(stream) == [] and released == [1]
    stream.close()
    assert released == [1]

    unread = LimitedStream(iter([b"a"]), 10, lambda: released.append(2), clock)
    unread.close()  # closed before the first part: the viewer left at once
    assert released == [1, 2]

    def failing():
        yield b"a"
        raise OSError("camera unplugged")

    broken = LimitedStream(failing(), 10, lambda: released.append(3), clock)
    assert next(broken) == b"a"
    with pytest.raises(OSError):
        next(broken)
    assert released == [1, 2, 3]


def test_slots_count_up_to_the_limit_and_back():
    slots = StreamSlots()
    assert [slots.take(2) for _ in range(3)] == [True, True, False]
    slots.give_back()
    assert slots.take(2) and slots.playing == 2


def test_the_cap_counts_the_streams_of_every_server_process(tmp_path):
    """Two worker processes: streams one of them plays count for the other, and a process
    killed with its streams gives their slots back."""
    import subprocess
    import sys

    from django.conf import settings as django_settings

    child = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from pathlib import Path; from live.streams import StreamSlots; "
            f"slots = StreamSlots(lambda: Path({str(tmp_path)!r})); "
            "print(slots.take(2), slots.take(2), flush=True); time.sleep(60)")],
        cwd=django_settings.BASE_DIR, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().split() == ["True", "True"]  # the other worker plays two
        here = StreamSlots(lambda: tmp_path)
        assert here.in_use(2) == 2 and here.take(2) is False
        assert here.take(3) is True and here.playing == 1  # a third slot, where the cap allows it
        here.give_back()
    finally:
        child.kill()
        child.wait()
    assert here.in_use(2) == 0 and here.take(2) is True  # the killed process's locks went with it
    here.give_back()
