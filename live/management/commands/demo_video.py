"""Write a video of demo faces for the live demo page, which has no camera on a server."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotator.demo import DEMO_DIR
from ferml.video import LiveSourceError, video_codec
from live.demo_clip import detectable_faces_by_majority, make_face_clip


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
