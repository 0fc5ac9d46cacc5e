"""Which inference path each network takes, chosen by measurement.

Per network, on a data set (FER2013 PublicTest for the shipped weights): PyTorch float32
and bf16 autocast, both with channels-last weights and inputs, and ONNX Runtime on the
network's export; their images per second and the share of float32's predictions each
other path changes. The fastest path that changes at most ``MAX_CHANGED`` of them is kept
(bf16 only where the hardware runs it natively); the choice is written to
``inference.json`` beside the weights, keyed by the network's content hash, where
``Predictor`` reads it (``inference.chosen_precision``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .device import bf16_is_fast
from .inference import Predictor
from .modelfiles import INFERENCE_PATHS

MAX_CHANGED = 0.001


def _timed(predict, images: np.ndarray) -> tuple[np.ndarray, float]:
    """``predict(images)`` and its images per second, after one warm-up batch (the first
    call of a path builds or loads what it needs, which no later batch pays again)."""
    predict(images[:8])
    started = time.perf_counter()
    probs = predict(images)
    return probs, len(images) / (time.perf_counter() - started)


def choose_path(row: dict) -> str:
    """The fastest measured path that changes at most ``MAX_CHANGED`` of float32's predictions."""
    speeds = row["images_per_second"]
    kept = {path: speed for path, speed in speeds.items()
            if path == "fp32" or row.get(f"changed_{path}", 1) <= MAX_CHANGED}
    return max(kept, key=kept.get)


def measure(network: Predictor, images: np.ndarray, onnx_dir: Path | None = None) -> dict:
    """float32 against bf16 (and ONNX Runtime, with ``onnx_dir``) on ``images`` for one network."""
    fp32, fp32_speed = _timed(lambda x: network.torch_probabilities(x, "fp32"), images)
    row = {"model": network.name, "tta": network.tta, "images": len(images),
           "images_per_second": {"fp32": fp32_speed}}
    if bf16_is_fast(network.device):
        bf16, speed = _timed(lambda x: network.torch_probabilities(x, "bf16"), images)
        row["images_per_second"]["bf16"] = speed
        row["changed_bf16"] = float(np.mean(bf16.argmax(1) != fp32.argmax(1)))
    if onnx_dir is not None:
        from .onnxmodel import OnnxPredictor, export_onnx

        path = onnx_dir / f"{network.key[:16]}.onnx"
        export_onnx(network, path, images[:8])
        runtime = OnnxPredictor(path, batch_size=network.batch_size)
        onnx, row["images_per_second"]["onnxruntime"] = _timed(runtime.predict_proba_arrays, images)
        row["changed_onnxruntime"] = float(np.mean(onnx.argmax(1) != fp32.argmax(1)))
    row["precision"] = choose_path(row)
    return row


def networks(predictor: Predictor) -> list[Predictor]:
    return predictor.members or [predictor]


def write_choices(rows: dict[str, dict], folder: Path) -> Path:
    """Add the measured choices (network key -> row) to ``folder``/inference.json."""
    path = Path(folder) / INFERENCE_PATHS
    known = json.loads(path.read_text()) if path.is_file() else {}
    known.update(rows)
    path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    return path
