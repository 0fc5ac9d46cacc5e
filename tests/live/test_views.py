"""The live demo page and stream, as staff and others see them, on a clip of demo faces."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from ferml.live import DEFAULT_LABEL_EVERY
from ferml.video import VideoSource
from live.demo_clip import make_face_clip

pytestmark = pytest.mark.django_db


@pytest.fixture
def video_dir(settings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("live-videos")
    settings.LIVE_VIDEO_DIR = folder
    return folder


@pytest.fixture
def staff_client(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_user("boss", password="x", is_staff=True))
    return client


def query(source, **overrides):
    params = {"source": source, "model": "bkvgg12", "spectrum": "bin3", "prediction_sense": "0.35",
              "tracking_sense": "60", "prediction_every": "3", "label_every": str(DEFAULT_LABEL_EVERY)}
    return {**params, **overrides}


def test_demo_video_command(demo_clip, capsys):
    frames = list(VideoSource(str(demo_clip)).frames())
    assert len(frames) == 3 * 30 and frames[0].shape == (320, 480, 3)
    with pytest.raises(CommandError, match="--per-label must be at least 1"):
        call_command("demo_video", "--per-label", "0")


def test_page_offers_the_stored_videos(staff_client, video_dir, demo_clip):
    (video_dir / "demo-faces.avi").write_bytes(demo_clip.read_bytes())
    (video_dir / "notes.txt").write_text("not a video")
    page = staff_client.get(reverse("live:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="demo-faces.avi"' in html and "notes.txt" not in html
    assert "live/stream.mjpg" not in html  # nothing plays before the user asks
    playing = staff_client.get(reverse("live:index"), query("demo-faces.avi", spectrum="full"))
    assert playing.status_code == 200
    assert "/live/stream.mjpg?source=demo-faces.avi" in playing.content.decode()


def test_stream_sends_annotated_frames(staff_client, video_dir, demo_clip):
    (video_dir / "demo-faces.avi").write_bytes(demo_clip.read_bytes())
    response = staff_client.get(reverse("live:stream"), query("demo-faces.avi"))
    assert response.status_code == 200
    assert response["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    chunks = iter(response.streaming_content)
    parts = [next(chunks) for _ in range(DEFAULT_LABEL_EVERY)]
    response.close()
    frames = []
    for part in parts:
        head, body = part.split(b"\r\n\r\n", 1)
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg")
        frames.append(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR))
    original = list(VideoSource(str(demo_clip)).frames(DEFAULT_LABEL_EVERY))
    assert not np.array_equal(frames[0], frames[-1])  # the face drifts
    # Frames are drawn on: at the label frame a filled label box differs from the plain video.
    assert frames[-1].shape == original[-1].shape
    assert np.abs(frames[-1].astype(int) - original[-1]).max() > 100


@pytest.mark.parametrize("params, message", [
    (query("/etc/passwd"), "is not a stored video, a camera number or a stream URL"),
    (query("../demo-faces.avi"), "is not a stored video"),
    (query("demo-faces.avi", prediction_sense="2"), "less than or equal to 1"),
    (query("demo-faces.avi", model="no_such_model"), "Select a valid choice"),
    (query("demo-faces.avi", label_every="0"), "greater than or equal to 1"),
])
def test_bad_settings_are_refused_with_a_reason(staff_client, video_dir, demo_clip, params, message):
    (video_dir / "demo-faces.avi").write_bytes(demo_clip.read_bytes())
    response = staff_client.get(reverse("live:stream"), params)
    assert response.status_code == 400 and message in response.content.decode()
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    page = staff_client.get(reverse("live:index"), params)
    assert page.status_code == 400 and message in page.content.decode()
    for answer in (response, page):  # the server's folders stay private
        assert str(video_dir) not in answer.content.decode()


def test_unreadable_video_is_refused(staff_client, video_dir):
    (video_dir / "broken.mp4").write_bytes(b"\x00" * 2048)
    response = staff_client.get(reverse("live:stream"), query("broken.mp4"))
    assert response.status_code == 400
    assert response.content.decode().startswith("LIVE_VIDEO_DIR/broken.mp4: ")  # its folder by name
    assert str(video_dir) not in response.content.decode()


def test_a_looping_stream_starts_the_video_again(staff_client, video_dir, demo_clip):
    face = next(VideoSource(str(demo_clip)).frames())
    make_face_clip([face[96:288, 8:200]], video_dir / "short.avi", seconds_per_face=0.4)  # 6 frames
    once = staff_client.get(reverse("live:stream"), query("short.avi"))
    assert len(list(once.streaming_content)) == 6
    looping = staff_client.get(reverse("live:stream"), {**query("short.avi"), "loop": "on"})
    chunks = iter(looping.streaming_content)
    assert len([next(chunks) for _ in range(15)]) == 15
    looping.close()


def test_only_staff_may_watch(client, django_user_model, video_dir):
    assert client.get(reverse("live:index")).status_code == 302  # to the login page
    client.force_login(django_user_model.objects.create_user("ann", password="x"))
    assert client.get(reverse("live:index")).status_code == 403
    assert client.get(reverse("live:stream"), query("0")).status_code == 403
