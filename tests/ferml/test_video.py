"""Video in and out: a clip of real faces read back, played again, and sources that fail."""
from __future__ import annotations

import numpy as np
import pytest

from ferml.video import LiveSourceError, VideoSource


def test_clip_holds_every_frame(clip, frames):
    assert len(frames) == 90 and frames[0].shape == (320, 480, 3)
    assert VideoSource(str(clip)).fps == 15


def test_loop_plays_a_file_again(clip, frames):
    looped = list(VideoSource(str(clip)).frames(max_frames=100, loop=True))
    assert len(looped) == 100
    assert np.array_equal(looped[90], frames[0]) and np.array_equal(looped[99], frames[9])


def test_source_errors_name_the_source(tmp_path):
    with pytest.raises(LiveSourceError, match="nothing.mp4: no such video file"):
        VideoSource(str(tmp_path / "nothing.mp4"))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(LiveSourceError, match="junk.avi"):
        list(VideoSource(str(junk)).frames())
