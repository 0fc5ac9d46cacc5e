"""``python -m ferml models | train | score | live``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import live as live_defaults
from .checkpoint import CheckpointError
from .data import DataError, load_dataset
from .labels import LABEL_SETS, LabelError
from .losses import LOSSES
from .models import UnknownModelError, list_models
from .train import OPTIMIZERS, TrainConfig

USER_ERRORS = (DataError, LabelError, CheckpointError, UnknownModelError, FileNotFoundError, ValueError)


def cmd_models(args) -> int:
    from .stats import zoo_table

    rows = zoo_table(args.model or None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<18}{'input':>7}{'ch':>4}{'params':>14}{'FLOPs':>16}{'MACs':>16}")
    for r in rows:
        print(f"{r['name']:<18}{r['input_size']:>7}{r['in_channels']:>4}{r['params']:>14,}{r['flops']:>16,}{r['macs']:>16,}")
    print("FLOPs per image = 2 x multiply-accumulates, counted by torch.utils.flop_counter on the built model.")
    return 0


def cmd_train(args) -> int:
    from .train import train

    cfg = TrainConfig(
        model=args.model, data=args.data, labels=args.labels, epochs=args.epochs, batch_size=args.batch_size,
        loss=args.loss, optimizer=args.optimizer, lr=args.lr, cosine=args.cosine, pixel_norm=not args.no_pixel_norm,
        augment=not args.no_augment, device=args.device, seed=args.seed, out=args.out, resume=args.resume,
        init=args.init, channels=args.channels, dropout=args.dropout, val_data=args.val_data,
        val_fraction=args.val_fraction, limit=args.limit, skip_bad=args.skip_bad, ferplus=args.ferplus,
        ferplus_mode=args.ferplus_mode, display_name=args.name, half=args.half, progress=not args.no_progress,
        time_limit=args.time_limit,
    )
    result = train(cfg, log=lambda m: print(m, flush=True))
    if int(os.environ.get("RANK", "0")) == 0:
        best = result["best"]
        print(f"best epoch {best.get('epoch')}: validation accuracy {100 * best['val_accuracy']:.2f} %")
        print(f"checkpoint: {result['out']}\nmetrics: {result['metrics']}")
    return 0


def cmd_score(args) -> int:
    from .inference import Predictor
    from .score import format_report, score_predictor

    predictor = Predictor.from_name(args.model, device=args.device, batch_size=args.batch_size)
    labels = args.labels or predictor.label_set
    data = load_dataset(args.data, labels, predictor.input_size, predictor.channels, split=args.split,
                        skip_bad=args.skip_bad, ferplus=args.ferplus, ferplus_mode=args.ferplus_mode)
    result = score_predictor(predictor, data)
    result["data"] = str(args.data)
    result["split"] = args.split
    print(format_report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def cmd_live(args) -> int:
    from collections import Counter

    from .inference import Predictor
    from .live import LiveAnalyzer, LiveSettings, VideoSource, live_frames, open_writer, video_codec

    settings = LiveSettings(args.spectrum, args.prediction_sense, args.tracking_sense,
                            args.prediction_every, args.label_every)
    if args.out:
        video_codec(args.out)  # a wrong file type is refused before any frame is read
    predictor = Predictor.from_name(args.model, device=args.device)
    video = VideoSource(args.source)
    writer, shown, n_frames, analyzer = None, Counter(), 0, LiveAnalyzer(predictor, settings)
    started = time.perf_counter()
    try:
        for frame in live_frames(analyzer, video, args.max_frames):
            n_frames += 1
            if args.out:
                writer = writer or open_writer(args.out, video.fps, (frame.shape[1], frame.shape[0]))
                writer.write(frame)
            for t in analyzer.labelled:
                shown[t.label] += 1
                print(f"frame {n_frames}: face #{t.id} {t.label} ({100 * t.probability:.0f} %)", flush=True)
    finally:
        if writer is not None:
            writer.release()
    seconds = time.perf_counter() - started
    labels = ", ".join(f"{k} {v}" for k, v in shown.most_common()) or "none"
    print(f"{n_frames} frames, {analyzer.n_predictions} face predictions, {analyzer.tracker.n_started} "
          f"faces tracked; labels shown: {labels}")
    print(f"{seconds:.1f} s, {n_frames / seconds:.1f} frames/s (detection, tracking, model and drawing)")
    if args.out:
        print(f"annotated video: {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferml", description="Train and score facial expression CNNs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model zoo with parameters and FLOPs")
    p.add_argument("model", nargs="*", help="only these models")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_models)

    data_opts = argparse.ArgumentParser(add_help=False)
    data_opts.add_argument("--data", required=True, help="FER2013 csv(.gz), AffectNet csv/folder, or class-per-folder tree or zip")
    data_opts.add_argument("--labels", choices=list(LABEL_SETS), help="label set")
    data_opts.add_argument("--skip-bad", action="store_true", help="skip and count malformed rows/images instead of stopping")
    data_opts.add_argument("--ferplus", help="FER+ fer2013new.csv: label FER2013 rows by their crowd votes")
    data_opts.add_argument("--ferplus-mode", choices=["majority", "plurality"], default="majority")
    data_opts.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    data_opts.add_argument("--batch-size", type=int, default=128)

    p = sub.add_parser("train", parents=[data_opts], help="train a model")
    p.add_argument("--model", required=True, choices=list_models(), metavar="NAME", help="one of: " + ", ".join(list_models()))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--loss", choices=list(LOSSES), default="ce", help="ce: cross-entropy; svm: L2 multiclass SVM, delta 1")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adadelta")
    p.add_argument("--lr", type=float, help="learning rate (default: 1.0 adadelta, 1e-3 adam, 0.01 sgd)")
    p.add_argument("--cosine", action="store_true", help="decay the learning rate to zero over the epochs (adadelta, adam)")
    p.add_argument("--no-pixel-norm", action="store_true", help="switch pixel normalization off (thesis 8.8)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--channels", type=int, choices=[1, 3], default=1, help="1 grayscale, 3 RGB")
    p.add_argument("--dropout", type=float, nargs="+", help="dropout schedule, e.g. 0.05 0.2 0.4")
    p.add_argument("--val-data", help="validation data (default: the data's own validation split)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held out for validation when the data has no splits")
    p.add_argument("--limit", type=int, help="use at most this many training and validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="best checkpoint path (default runs/NAME.pt)")
    p.add_argument("--resume", help="continue from a .last.pt file")
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tuning)")
    p.add_argument("--name", help="name recorded in the checkpoint (default: the file name)")
    p.add_argument("--half", action="store_true", help="store the best checkpoint's weights in half precision")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--time-limit", type=float, metavar="MIN",
                   help="stop (keeping the best checkpoint) before an epoch that would end past MIN minutes")
    p.set_defaults(func=cmd_train, labels="fer7")

    p = sub.add_parser("score", parents=[data_opts], help="score a trained model")
    p.add_argument("--model", required=True, help="model name (NAME.pt in $FERML_MODEL_DIR or shipped) or checkpoint file")
    p.add_argument("--split", help="train, val or test (default: every row)")
    p.add_argument("--json", help="write the result as JSON here")
    p.set_defaults(func=cmd_score, batch_size=256)

    p = sub.add_parser("live", help="label the faces of a video file, camera or stream (thesis 7.5)")
    p.add_argument("--model", default="bkvgg12", help="model name or checkpoint file (default bkvgg12)")
    p.add_argument("--source", required=True, help="video file, camera number (0) or stream URL")
    p.add_argument("--out", help="write the annotated video here (.avi or .mp4)")
    p.add_argument("--spectrum", default="bin3", choices=["full"] + list(LABEL_SETS),
                   help="full: the model's own classes; or a label set to bin them into (default bin3)")
    p.add_argument("--prediction-sense", type=float, default=live_defaults.DEFAULT_PREDICTION_SENSE,
                   help="below this mean probability the label is 'uncertain'")
    p.add_argument("--tracking-sense", type=float, default=live_defaults.DEFAULT_TRACKING_SENSE,
                   help="largest move in pixels of a face's centre between analysed frames")
    p.add_argument("--prediction-every", type=int, default=live_defaults.DEFAULT_PREDICTION_EVERY,
                   help="analyse every Nth frame")
    p.add_argument("--label-every", type=int, default=live_defaults.DEFAULT_LABEL_EVERY,
                   help="show a new label every N frames")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_live)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
