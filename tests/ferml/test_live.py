"""The live demo core on real faces: tracking, labelling and the command line."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferml.inference import Predictor
from ferml.labels import FER7, binning_matrix
from ferml.live import UNCERTAIN, CentreTracker, LiveAnalyzer, LiveSettings
from ferml.video import VideoSource

from .conftest import boxes_found
from .test_train import run_cli


@pytest.fixture(scope="module")
def predictor():
    return Predictor.from_name("bkvgg12")


def run(predictor, frames, **settings):
    analyzer = LiveAnalyzer(predictor, LiveSettings(**settings))
    events = []  # (frame number, track id, label, probability)
    for n, frame in enumerate(frames, 1):
        analyzer.process(frame)
        events += [(n, t.id, t.label, t.probability) for t in analyzer.labelled]
    return analyzer, events


# --- tracker ---------------------------------------------------------------------------


def test_tracker_follows_a_moving_face_and_loses_a_jump():
    tracker = CentreTracker(tracking_sense=20)
    first = tracker.update([(100, 100, 50, 50)])[0]
    assert tracker.update([(110, 105, 50, 50)])[0] is first  # moved 11.2 px
    assert first.box == (110, 105, 50, 50)
    jumped = tracker.update([(140, 105, 50, 50)])[0]  # 30 px: another face
    assert jumped.id == 2 and tracker.n_started == 2
    assert tracker.update([]) == [] and tracker.tracks == []
    assert tracker.update([(140, 105, 50, 50)])[0].id == 3  # a lost face comes back as a new one


def test_tracker_gives_each_track_its_nearest_face():
    tracker = CentreTracker(tracking_sense=60)
    left, right = tracker.update([(0, 0, 20, 20), (100, 0, 20, 20)])
    # Both new boxes lie within 60 px of the left track; the nearer one keeps it and
    # the other goes to the right track, 55 px away.
    a, b = tracker.update([(45, 0, 20, 20), (10, 0, 20, 20)])
    assert (a.id, b.id) == (right.id, left.id)
    # Two faces and one track: the farther face starts a track of its own.
    near, far = tracker.update([(12, 0, 20, 20), (300, 0, 20, 20)])
    assert near.id == left.id and far.id == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"prediction_sense": 1.5}, "prediction sense must be between 0 and 1"),
    ({"tracking_sense": 0}, "tracking sense must be a positive number of pixels"),
    ({"prediction_every": 0}, "prediction every must be a whole number of frames"),
    ({"label_every": 2.5}, "label every must be a whole number of frames"),
    ({"spectrum": "bin5"}, "bin5"),
])
def test_settings_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiveSettings(**kwargs)


# --- labels on a real clip --------------------------------------------------------------


def test_label_is_the_mean_of_the_analysed_frames(predictor, frames):
    analyzer, events = run(predictor, frames, spectrum="bin3", prediction_sense=0, prediction_every=3, label_every=9)
    # Frames 1, 4 and 7 are analysed before the first label at frame 9; recompute it here.
    probs = []
    for frame in frames[0:9:3]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        (x, y, w, h), = boxes_found(gray)
        probs.append(predictor.predict_proba([gray[y:y + h, x:x + w]], "bin3")[0])
    mean = np.mean(probs, axis=0)
    n, track, label, probability = events[0]
    assert (n, track) == (9, 1)
    assert label == ["negative", "neutral", "positive"][mean.argmax()]
    assert probability == pytest.approx(mean.max(), abs=1e-6)
    # One track per face that drifts 12 px between analysed frames, a label every 9 frames.
    assert analyzer.tracker.n_started == 3
    assert [e[0] for e in events] == list(range(9, 91, 9))
    assert {e[1] for e in events} == {1, 2, 3}
    assert analyzer.n_predictions == 30


def test_prediction_sense_turns_weak_labels_uncertain(predictor, frames):
    _, events = run(predictor, frames[:9], prediction_sense=0)
    (_, _, label, probability), = events
    _, at = run(predictor, frames[:9], prediction_sense=probability)
    _, above = run(predictor, frames[:9], prediction_sense=min(1.0, probability + 1e-4))
    assert at[0][2] == label  # "greater than or equal" keeps the label
    assert above[0][2] == UNCERTAIN


def test_full_spectrum_and_binning_agree(predictor, frames):
    _, full = run(predictor, frames[:27], spectrum="full", prediction_sense=0)
    _, binned = run(predictor, frames[:27], spectrum="bin3", prediction_sense=0)
    assert {e[2] for e in full} <= set(FER7) and {e[2] for e in binned} <= {"negative", "neutral", "positive"}
    analyzer = LiveAnalyzer(predictor, LiveSettings(spectrum="full", prediction_sense=0, label_every=1000))
    for frame in frames[:9]:
        analyzer.process(frame)
    track, = analyzer.tracker.tracks
    bins = (track.prob_sum / track.n_predictions) @ binning_matrix(FER7, "bin3")
    assert binned[0][3] == pytest.approx(bins.max(), abs=1e-5)


def test_a_tight_tracking_sense_loses_moving_faces(predictor, frames):
    analyzer, events = run(predictor, frames[:30], tracking_sense=5)
    # The face moves 12 px between analysed frames: every analysis starts a new track.
    assert analyzer.tracker.n_started == 10
    assert all(track == n // 3 for n, track, _, _ in events)


# --- command line -----------------------------------------------------------------------


def test_cli_live_writes_the_annotated_video(clip, tmp_path):
    out = tmp_path / "annotated.mp4"
    res = run_cli("live", "--source", str(clip), "--out", str(out), "--max-frames", "30",
                  "--prediction-sense", "0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0].startswith("frame 9: face #1 ")
    assert "30 frames, 10 face predictions, 1 faces tracked" in res.stdout
    written = list(VideoSource(str(out)).frames())
    assert len(written) == 30 and written[0].shape == (320, 480, 3)


@pytest.mark.parametrize("args, message", [
    (["--source", "missing.avi"], "missing.avi: no such video file"),
    (["--source", "CLIP", "--out", "x.gif"], "x.gif: write the annotated video as .avi or .mp4"),
    (["--source", "CLIP", "--prediction-sense", "7"], "prediction sense must be between 0 and 1"),
])
def test_cli_live_errors(clip, args, message):
    res = run_cli("live", *[str(clip) if a == "CLIP" else a for a in args])
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
