"""The Motion-JPEG stream the live demo page plays."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferml.video import VideoSource
from live.mjpeg import mjpeg_stream


@pytest.fixture(scope="module")
def frames(demo_clip):
    return list(VideoSource(str(demo_clip)).frames(3))


def test_mjpeg_parts_are_jpeg_frames(frames):
    parts = list(mjpeg_stream(frames[:3], boundary="b"))
    assert len(parts) == 3
    head, body = parts[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"--b\r\nContent-Type: image/jpeg")
    length = int(head.rsplit(b"Content-Length: ", 1)[1])
    image = cv2.imdecode(np.frombuffer(body[:length], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == frames[0].shape and body[length:] == b"\r\n"
