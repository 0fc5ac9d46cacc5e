"""Which inference path each network takes, chosen by measurement.

Per network, on a data set (FER2013 PublicTest for the shipped weights): float32 and bf16
autocast, both with channels-last weights and inputs, their images per second and the
share of predictions bf16 changes. bf16 is kept only where it changes at most
``MAX_CHANGED`` of them and the hardware runs it natively; the choice is written to
``inference.json`` beside the weights, keyed by the network's content hash, where
``Predictor`` reads it (``inference.chosen_precision``). ONNX Runtime is measured too,
for the record: it is the path of models brought as ONNX.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .device import bf16_is_fast
from .inference import INFERENCE_PATHS, Predictor
from .tta import predict_probabilities

MAX_CHANGED = 0.001


def _timed_probabilities(network: Predictor, images: np.ndarray, precision: str) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = []
    for start in range(0, len(images), network.batch_size):
        x = network.preprocessor(torch.from_numpy(images[start:start + network.batch_size]))
        out.append(predict_probabilities(network.model, x, network.tta, network.batch_size, network.device,
                                         precision).numpy())
    return np.concatenate(out), len(images) / (time.perf_counter() - started)


def measure(network: Predictor, images: np.ndarray, onnx_dir: Path | None = None) -> dict:
    """float32 against bf16 (and ONNX Runtime, with ``onnx_dir``) on ``images`` for one network."""
    fp32, fp32_speed = _timed_probabilities(network, images, "fp32")
    row = {"model": network.name, "tta": network.tta, "images": len(images),
           "images_per_second": {"fp32": fp32_speed}}
    if bf16_is_fast(network.device):
        bf16, speed = _timed_probabilities(network, images, "bf16")
        row["images_per_second"]["bf16"] = speed
        row["changed_bf16"] = float(np.mean(bf16.argmax(1) != fp32.argmax(1)))
    if onnx_dir is not None:
        from .onnxmodel import OnnxPredictor, export_onnx

        path = onnx_dir / f"{network.key[:16]}.onnx"
        export_onnx(network, path, images[:8])
        runtime = OnnxPredictor(path, batch_size=network.batch_size)
        started = time.perf_counter()
        onnx = runtime.predict_proba_arrays(images)
        row["images_per_second"]["onnxruntime"] = len(images) / (time.perf_counter() - started)
        row["changed_onnxruntime"] = float(np.mean(onnx.argmax(1) != fp32.argmax(1)))
    faster = row["images_per_second"].get("bf16", 0) > fp32_speed
    row["precision"] = "bf16" if faster and row.get("changed_bf16", 1) <= MAX_CHANGED else "fp32"
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
