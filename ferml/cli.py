"""``python -m ferml models | bench | train | score | export | paths | ensemble | live``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import live as live_defaults
from .bench import DEFAULT_MODELS as DEFAULT_BENCH_MODELS
from .checkpoint import CheckpointError
from .config import DATA_OPTIONS, DRAWN, VAL_SPLIT_SPELLINGS, add_options, from_args
from .data import DataError, load_dataset
from .labels import LABEL_SETS, LabelError
from .models import UnknownModelError
from .tta import TTA_MODES

USER_ERRORS = (DataError, LabelError, CheckpointError, UnknownModelError, FileNotFoundError, ValueError)


def cmd_models(args) -> int:
    from .flops import zoo_table

    rows = zoo_table(args.model or None)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<18}{'input':>7}{'ch':>4}{'params':>14}{'FLOPs':>16}{'MACs':>16}")
    for r in rows:
        print(f"{r['name']:<18}{r['input_size']:>7}{r['in_channels']:>4}{r['params']:>14,}{r['flops']:>16,}{r['macs']:>16,}")
    print("FLOPs per image = 2 x multiply-accumulates, counted by torch.utils.flop_counter on the built model.")
    return 0


def cmd_bench(args) -> int:
    import torch

    from .bench import HEADER, run_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size} "
          f"(training: forward, backward and an AdamW step; inference: forward only; channels-last)")
    print(HEADER, flush=True)
    rows = run_bench(args.model or None or DEFAULT_BENCH_MODELS, args.precision, args.device, args.batch_size,
                     args.repeats, log=lambda line: print(line, flush=True))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def cmd_train(args) -> int:
    from .train import train

    # a log file gets the epoch lines only
    cfg = from_args(args, progress=args.progress and sys.stderr.isatty())
    result = train(cfg, log=lambda m: print(m, flush=True))
    if int(os.environ.get("RANK", "0")) == 0:
        best = result["best"]
        print(f"best epoch {best.get('epoch')}: validation accuracy {100 * best['val_accuracy']:.2f} %")
        print(f"checkpoint: {result['out']}\nmetrics: {result['metrics']}")
    return 0


def cmd_score(args) -> int:
    from .inference import Predictor
    from .score import format_report, score_predictor

    predictor = Predictor.from_name(args.model, device=args.device, batch_size=args.batch_size, tta=args.tta)
    data = _scoring_data(args, predictor)
    result = score_predictor(predictor, data)
    result["data"] = str(args.data)
    result["split"] = args.split
    print(format_report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _scoring_data(args, predictor):
    labels = args.labels or predictor.label_set
    load = dict(label_set=labels, size=predictor.input_size, channels=predictor.channels, skip_bad=args.skip_bad,
                ferplus=args.ferplus, ferplus_mode=args.ferplus_mode)
    if VAL_SPLIT_SPELLINGS.get(args.split, args.split) == DRAWN:
        return drawn_validation_of(predictor.checkpoint, args.data, load)
    return load_dataset(args.data, split=args.split, **load)


def cmd_export(args) -> int:
    """A checkpoint for use: no resume state, the chosen test-time augmentation, and
    half-precision weights when no prediction on the given data changes; or, with
    ``--onnx``, the model as ONNX with its metadata."""

    from .checkpoint import read_checkpoint, save_checkpoint
    from .inference import Predictor
    from .modelfiles import resolve_model

    if args.onnx:
        return _export_onnx(args)
    source = resolve_model(args.model)
    checkpoint = read_checkpoint(source)
    full = Predictor(source, device=args.device, batch_size=args.batch_size, checkpoint=checkpoint)
    data = _scoring_data(args, full)
    exported = dict(checkpoint)
    exported.pop("resume", None)
    if args.tta:
        exported["tta"] = args.tta
        full = Predictor(source, device=args.device, batch_size=args.batch_size, checkpoint=exported)
    if "members" in exported:
        exported["members"] = [dict(m) for m in exported["members"]]
    for part in exported.get("members", [exported]):
        part["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in part["state_dict"].items()}
    half = Predictor(source, device=args.device, batch_size=args.batch_size, checkpoint=exported)
    before = full.predict_proba_arrays(data.images, data.label_set).argmax(1)
    after = half.predict_proba_arrays(data.images, data.label_set).argmax(1)
    changed = int((before != after).sum())
    accuracy = [float((p == data.labels).mean()) for p in (before, after)]
    print(f"{changed} of {len(before)} predictions change in half precision; accuracy "
          f"{100 * accuracy[0]:.2f} % -> {100 * accuracy[1]:.2f} % ({data.label_set}, TTA {full.tta})")
    if changed and not args.allow_changes:
        if args.float32_fallback:
            exported = {k: v for k, v in checkpoint.items() if k != "resume"}
            exported["tta"] = full.tta
            print("float32 weights kept")
        else:
            print("error: not written; pass --float32-fallback to keep float32 weights, or --allow-changes",
                  file=sys.stderr)
            return 2
    out = save_checkpoint(exported, args.out)
    print(f"{out}: {out.stat().st_size / 2**20:.1f} MiB (was {source.stat().st_size / 2**20:.1f} MiB)")
    return 0


ONNX_CHECK_IMAGES = 512


def _export_onnx(args) -> int:
    """The checkpoint's whole prediction (preprocessing, test-time views, softmax) as one ONNX
    graph, checked against PyTorch on the first images of --data (refused, and nothing
    written, where they differ by more than ``onnxmodel.MAX_DIFFERENCE``)."""
    from .inference import Predictor
    from .onnxmodel import export_onnx

    if not str(args.out).endswith(".onnx"):
        raise ValueError(f"{args.out}: an ONNX model is written to a file ending in .onnx")
    predictor = Predictor.from_name(args.model, device="cpu", batch_size=args.batch_size, tta=args.tta)
    data = _scoring_data(args, predictor)
    check = data.images[:ONNX_CHECK_IMAGES]
    result = export_onnx(predictor, args.out, check)
    print(f"{args.out}: {predictor.name} as ONNX ({Path(args.out).stat().st_size / 2**20:.1f} MiB); on "
          f"{len(check)} images of {args.data} its probabilities differ from PyTorch's by at most "
          f"{result['max_difference']:.1e}")
    return 0


def cmd_prepare(args) -> int:
    """Export, once per machine, each network whose measured path is ONNX Runtime, so that
    no later prediction waits for it (a network is otherwise exported on its first use)."""
    import time

    import numpy as np

    from .inference import Predictor, onnx_cache_dir
    from .modelfiles import available_models

    names = args.model or available_models()
    prepared = 0
    for name in names:
        predictor = Predictor.from_name(name, device="cpu")
        for network in predictor.members or [predictor]:
            if network.precision != "onnxruntime":
                continue
            started = time.perf_counter()
            # the export is checked against PyTorch on a few seeded noise images
            noise = np.random.default_rng(0).integers(0, 256, (8, network.channels, network.input_size,
                                                               network.input_size), dtype=np.uint8)
            network.runtime(noise)
            prepared += 1
            print(f"{network.name}: ONNX Runtime graph ready in {time.perf_counter() - started:.1f} s", flush=True)
    print(f"{prepared} network(s) on ONNX Runtime, in {onnx_cache_dir()}")
    return 0


def cmd_paths(args) -> int:
    """Measure float32, bf16 (and ONNX Runtime) per network on --data and keep the fastest path
    that changes at most 0.1 % of the predictions."""
    import tempfile

    from .inference import Predictor
    from .modelfiles import INFERENCE_PATHS, resolve_model
    from .paths import MAX_CHANGED, measure, networks, write_choices

    rows, folders = {}, set()
    print(f"{'network':<22}{'views':>6}{'fp32 img/s':>12}{'bf16 img/s':>12}{'bf16 changed':>14}"
          f"{'ORT img/s':>11}{'ORT changed':>13}  path")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.model:
            predictor = Predictor.from_name(name, device=args.device, batch_size=args.batch_size)
            folders.add(resolve_model(name).parent)
            data = _scoring_data(args, predictor)
            for network in networks(predictor):
                images = data.images if network.input_size == predictor.input_size else \
                    _scoring_data(args, network).images
                row = measure(network, images[:args.limit] if args.limit else images,
                              Path(scratch) if args.onnx else None)
                rows[network.key] = row
                if args.write:  # each network's choice is kept as soon as it is measured
                    write_choices({network.key: row}, resolve_model(name).parent)
                speed = row["images_per_second"]

                def cell(value, pattern):
                    return format(value, pattern) if value is not None else "-"
                print(f"{row['model']:<22}{row['tta']:>6}{speed['fp32']:>12.1f}{cell(speed.get('bf16'), '>12.1f')}"
                      f"{cell(row.get('changed_bf16'), '>14.4%')}{cell(speed.get('onnxruntime'), '>11.1f')}"
                      f"{cell(row.get('changed_onnxruntime'), '>13.4%')}  {row['precision']}", flush=True)
    print(f"path: the fastest of those that change at most {MAX_CHANGED:.1%} of float32's predictions.")
    if args.write:
        print(f"written to {', '.join(str(Path(folder) / INFERENCE_PATHS) for folder in sorted(map(str, folders)))}")
    return 0


def cmd_ensemble(args) -> int:
    from .checkpoint import make_ensemble, member_reference, read_checkpoint, save_checkpoint
    from .labels import binning_matrix, check_label_set
    from .modelfiles import resolve_model

    files = [resolve_model(name) for name in args.members]
    members = [read_checkpoint(path) for path in files]
    label_set = args.labels or members[0]["labels"]["set"]
    classes = check_label_set(label_set)
    for name, member in zip(args.members, members):
        try:
            binning_matrix(member["labels"]["classes"], label_set)
        except LabelError:
            raise LabelError(f"{name} answers in {member['labels']['set']}, which cannot be binned into {label_set}") from None
    name = args.name or Path(args.out).stem
    references = [member_reference(path) for path in files] if args.by_reference else None
    out = save_checkpoint(make_ensemble(members, list(args.members), label_set, classes, name, references), args.out)
    how = " (members by reference: keep their files beside it or among the known models)" if references else ""
    print(f"{out}: ensemble {name} of {', '.join(args.members)} ({label_set}){how}")
    return 0


def drawn_validation_of(checkpoint: dict, path, load: dict):
    """The training images a checkpoint drew for validation (its seed and fraction)."""
    import numpy as np

    from .checkpoint import file_sha256
    from .data import MissingSplitError, draw_mask

    parts = checkpoint.get("members", [checkpoint])
    draws = {(_draw_seed(p.get("train", {})), p.get("train", {}).get("val_fraction"),
              p.get("data", {}).get("sha256")) for p in parts}
    if len(draws) > 1:
        raise ValueError("the ensemble's members drew different validation images; score them one by one")
    checkpoint = parts[0]
    trained = checkpoint.get("train", {})
    if "seed" not in trained:
        raise ValueError("this checkpoint records no training run, so no drawn validation images")
    if VAL_SPLIT_SPELLINGS.get(trained.get("val_split"), trained.get("val_split")) != DRAWN and trained.get("val_data"):
        raise ValueError("this checkpoint was validated on other data (--val-data), not on images drawn from its "
                         "training data")
    recorded = checkpoint.get("data", {}).get("sha256")
    if recorded and Path(path).is_file() and file_sha256(path) != recorded:
        raise ValueError(f"{path} is not the file this checkpoint was trained on "
                         f"({checkpoint['data'].get('file')}, sha256 {recorded[:12]}...)")
    try:
        data = load_dataset(path, split=trained.get("train_split", "train"), **load)
    except MissingSplitError:
        data = load_dataset(path, split=None, **load)
    return data.subset(np.flatnonzero(draw_mask(data.keys, _draw_seed(trained),
                                                float(trained.get("val_fraction", 0.1)))))


def _draw_seed(trained: dict) -> int | None:
    # checkpoints written before the rename record it as holdout_seed
    seed = trained.get("draw_seed", trained.get("holdout_seed"))
    return int(trained["seed"]) if seed is None and "seed" in trained else seed


def cmd_live(args) -> int:
    from .live import LiveSettings, label_video

    settings = LiveSettings(args.spectrum, args.prediction_sense, args.tracking_sense,
                            args.prediction_every, args.label_every)
    label_video(args.source, args.model, settings, out=args.out, max_frames=args.max_frames,
                device=args.device)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ferml", description="Train and score facial expression CNNs.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the model zoo with parameters and FLOPs")
    p.add_argument("model", nargs="*", help="only these models")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=cmd_models)

    data_opts = argparse.ArgumentParser(add_help=False)
    add_options(data_opts, DATA_OPTIONS, labels=None)  # a scoring command's default: the model's own labels

    p = sub.add_parser("bench", help="training and inference speed per model and precision, beside FLOPs")
    p.add_argument("model", nargs="*", help=f"models to time (default: {' '.join(DEFAULT_BENCH_MODELS)})")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16", "onnxruntime"], default=["fp32", "bf16"],
                   help="PyTorch precisions, and onnxruntime for inference under ONNX Runtime")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each measurement (the median counts)")
    p.add_argument("--threads", type=int, help="torch threads (default: PyTorch's choice)")
    p.add_argument("--json", help="write the rows as JSON here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train", help="train a model")
    add_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", parents=[data_opts], help="score a trained model")
    p.add_argument("--model", required=True, help="model name (NAME.pt in $FERML_MODEL_DIR or shipped) or checkpoint file")
    p.add_argument("--split", help=f"train, val or test (default: every row), or {DRAWN}: the training images "
                                   f"the checkpoint drew for validation (--val-split {DRAWN})")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the checkpoint's own)")
    p.add_argument("--json", help="write the result as JSON here")
    p.set_defaults(func=cmd_score, batch_size=256)

    p = sub.add_parser("export", parents=[data_opts],
                       help="write a checkpoint for use: without resume state, with the chosen test-time "
                            "augmentation, and in half precision if no prediction on --data changes")
    p.add_argument("model", help="model name or checkpoint file")
    p.add_argument("out", help="the checkpoint to write")
    p.add_argument("--split", help=f"train, val, test or {DRAWN} (default: every row)")
    p.add_argument("--tta", choices=TTA_MODES, help="store this test-time augmentation (default: keep the checkpoint's)")
    p.add_argument("--float32-fallback", action="store_true", help="keep float32 weights if half precision changes a prediction")
    p.add_argument("--allow-changes", action="store_true", help="write half precision even if predictions change")
    p.add_argument("--onnx", action="store_true",
                   help="write OUT.onnx: the whole prediction (preprocessing, test-time views, softmax) as ONNX with "
                        "its metadata, checked against PyTorch on --data")
    p.set_defaults(func=cmd_export, batch_size=256)

    p = sub.add_parser("paths", parents=[data_opts],
                       help="measure float32 against bf16 (and ONNX Runtime) per network and choose each one's path")
    p.add_argument("model", nargs="+", help="model names or files")
    p.add_argument("--split", help=f"train, val, test or {DRAWN} (default: every row)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--onnx", action="store_true", help="measure ONNX Runtime too")
    p.add_argument("--write", action="store_true", help="write the choices to inference.json beside the models")
    p.set_defaults(func=cmd_paths, batch_size=256)

    p = sub.add_parser("prepare", help="export the networks that run on ONNX Runtime (inference.json) once, "
                                       "before their first use")
    p.add_argument("model", nargs="*", help="model names or files (default: every known model)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("ensemble", help="a checkpoint that averages the probabilities of trained models")
    p.add_argument("members", nargs="+", help="model names or checkpoint files (input sizes may differ)")
    p.add_argument("--out", required=True, help="the ensemble checkpoint to write")
    p.add_argument("--name", help="its name in reports (default: the file name)")
    p.add_argument("--labels", choices=list(LABEL_SETS), help="its label set (default: the first member's)")
    p.add_argument("--by-reference", action="store_true",
                   help="store each member's file name and sha256 instead of its weights (a small file; the "
                        "members are then found beside it, else by name, and must not change)")
    p.set_defaults(func=cmd_ensemble)

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
