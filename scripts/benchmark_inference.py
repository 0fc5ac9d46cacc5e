"""The benchmark's speed against what the networks allow, on every FER2013 PublicTest face.

Builds the study of every PublicTest face with FER+ votes (about 3,550 images, 10
annotators) in a throwaway SQLite database, then:

1. for each distinct network of the models (an ensemble's members count once, and only
   where they are not benchmarked already), its inference images per second from
   ``ferml bench``'s timing (PyTorch channels-last, or ONNX Runtime) on the path chosen for it
   (``inference.json``) at the batch size the benchmark gives it, and the time its test-time
   views of the paired images need at that rate: the sum of these is the floor;
2. ``python -m ferml prepare`` into an empty cache: the one-time export of the networks
   whose path is ONNX Runtime (once per machine; timed apart);
3. ``manage.py benchmark --holdout all`` of all the models with an empty prediction store
   (cold), timed as a whole command;
4. the same with another held-out annotator (warm: every prediction is stored).

It prints the floor per network, the cold and warm times and the cold time over the
floor. Needs ../shared/data. Run it when nothing else runs:

    OMP_NUM_THREADS=2 .venv/bin/python -m scripts.benchmark_inference [MODEL ...]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEWS = {"none": 1, "flip": 2, "crops": 10}


def run(args: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="default: every shipped model")
    parser.add_argument("--repeats", type=int, default=30,
                        help="batches timed per network for the floor, after two warm-up batches (a few "
                             "batches overstate what a network sustains)")
    parser.add_argument("--keep", metavar="DIR", help="build the study in DIR and keep it (default: a "
                        "temporary folder that is removed); DIR must not hold a study yet")
    args = parser.parse_args(argv)

    import torch

    from ferml.bench import bench_path
    from ferml.inference import Predictor
    from ferml.modelfiles import available_models

    models = args.models or available_models()
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as scratch:
        Path(scratch).mkdir(parents=True, exist_ok=True)
        env = os.environ | {"DATABASE_URL": f"sqlite:///{scratch}/db.sqlite3", "MEDIA_ROOT": f"{scratch}/media",
                            "DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "0",
                            "FERML_CACHE_DIR": f"{scratch}/cache"}
        run(["-m", "scripts.fixtures.make_demo_study", "--per-label", "0", "--out", f"{scratch}/study"], env)
        run(["manage.py", "migrate", "-v", "0"], env)
        run(["manage.py", "import_testset", f"{scratch}/study/images", "--name", "publictest"], env)
        run(["manage.py", "import_votes", f"{scratch}/study/votes.csv", "--testset", "publictest"], env)
        report = Path(scratch) / "cold.json"
        model_args = [a for name in models for a in ("--model", name)]
        export = run(["-m", "ferml", "prepare", *models], env)
        cold = run(["manage.py", "benchmark", "--testset", "publictest", "--holdout", "all", *model_args,
                    "--json", str(report)], env)
        result = json.loads(report.read_text())
        paired = result["panel"]["n_images"]
        warm = run(["manage.py", "benchmark", "--testset", "publictest", "--holdout",
                    result["panel"]["annotators"][0]["annotator"], *model_args], env)

    print(f"{result['testset']['n_images']} images with votes, {paired} paired in the panel; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'network':<24}{'path':>12}{'views':>7}{'batch':>7}{'img/s':>9}{'seconds':>9}")
    floor, seen = 0.0, set()
    for name in models:
        predictor = Predictor.from_name(name)
        for network in predictor.members or [predictor]:
            if network.key in seen:
                continue  # computed once, for whichever model names it first
            seen.add(network.key)
            architecture = network.checkpoint["model"]["name"]
            rate = bench_path(architecture, network.precision, torch.device("cpu"), repeats=args.repeats,
                              batch=network.batch_size, num_classes=len(network.classes))["infer_images_per_second"]
            seconds = VIEWS[network.tta] * paired / rate
            floor += seconds
            print(f"{network.name:<24}{network.precision:>12}{VIEWS[network.tta]:>7}{network.batch_size:>7}{rate:>9.1f}{seconds:>9.1f}")
    print(f"floor (views x images / images per second, summed): {floor:.0f} s")
    print(f"one-time export of the ONNX Runtime networks (python -m ferml prepare, once per machine): {export:.0f} s")
    print(f"cold benchmark (empty prediction store), the whole command: {cold:.0f} s = {cold / floor:.2f} x the floor")
    print(f"warm benchmark (another held-out annotator, every prediction stored): {warm:.1f} s")
    if args.keep:
        print(f"kept: DATABASE_URL=sqlite:///{args.keep}/db.sqlite3 MEDIA_ROOT={args.keep}/media "
              f"FERML_CACHE_DIR={args.keep}/cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
