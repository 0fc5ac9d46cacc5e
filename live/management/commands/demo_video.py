"""Write a video of demo faces for the live demo page, which has no camera on a server."""
import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from PIL import Image

from annotator.demo import DEMO_DIR
from ferml.faces import find_faces
from ferml.live import LiveSourceError, face_tile, make_face_clip, video_codec


def detectable_faces_by_majority(fixture_dir: Path, per_label: int) -> list[np.ndarray]:
    """The first ``per_label`` faces of each majority label whose tile the detector finds."""
    votes = defaultdict(Counter)
    with open(fixture_dir / "votes.csv", newline="") as f:
        for row in csv.DictReader(f):
            votes[row["image"]][row["label"]] += 1
    chosen = defaultdict(list)
    for image, counts in sorted(votes.items()):
        (label, top), *rest = counts.most_common()
        if rest and rest[0][1] == top or len(chosen[label]) >= per_label:
            continue
        face = np.asarray(Image.open(fixture_dir / "images" / image).convert("L"))
        if find_faces(face_tile(face)):
            chosen[label].append(face)
    return [face for label in sorted(chosen) for face in chosen[label]]


class Command(BaseCommand):
    help = "Write var/live/demo-faces.avi: demo faces of each majority label drifting across the frame."

    def add_arguments(self, parser):
        parser.add_argument("--per-label", type=int, default=2)
        parser.add_argument("--out", help="video file (.avi or .mp4); default LIVE_VIDEO_DIR/demo-faces.avi")

    def handle(self, *args, **options):
        if options["per_label"] < 1:
            raise CommandError("--per-label must be at least 1")
        out = Path(options["out"] or Path(settings.LIVE_VIDEO_DIR) / "demo-faces.avi")
        try:
            video_codec(out)
        except LiveSourceError as exc:
            raise CommandError(str(exc)) from exc
        faces = detectable_faces_by_majority(DEMO_DIR, options["per_label"])
        make_face_clip(faces, out)
        self.stdout.write(f"{out}: {len(faces)} demo faces, 2 seconds each")
