"""Find a trained model by name or file and run it on images in batches."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import build_model, file_sha256, read_checkpoint
from .data import to_model_array
from .device import bf16_is_fast, pick_device
from .labels import binning_matrix, check_label_set
from .preprocess import Preprocessor
from .tta import check_tta, predict_probabilities

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class ModelNotFoundError(FileNotFoundError):
    def __str__(self) -> str:
        return self.args[0]


def train_hint(name: str) -> str:
    model_dir = os.environ.get("FERML_MODEL_DIR")
    out = f"{model_dir}/{name}.pt" if model_dir else f"models/{name}.pt"
    hint = "" if model_dir else "\nthen set FERML_MODEL_DIR=models so that it is found by name."
    return f"python -m ferml train --model {name} --data fer2013.csv.gz --out {out}{hint}"


MODEL_SUFFIXES = (".pt", ".onnx")


def _checkpoints_in(folder: Path) -> set[str]:
    # NAME.last.pt is the resume state that training writes beside NAME.pt, not a model; an
    # ONNX model goes by its file name (NAME.onnx), so it never hides a checkpoint's name
    return ({p.stem for p in folder.glob("*.pt") if not p.name.endswith(".last.pt")}
            | {p.name for p in folder.glob("*.onnx")})


def available_models() -> list[str]:
    """Names of the models whose weights ship with the package or lie in $FERML_MODEL_DIR."""
    names = _checkpoints_in(WEIGHTS_DIR)
    model_dir = os.environ.get("FERML_MODEL_DIR")
    if model_dir and Path(model_dir).is_dir():
        names |= _checkpoints_in(Path(model_dir))
    return sorted(names)


def resolve_model(name_or_path) -> Path:
    """A model file path: the path itself, else NAME.pt (or NAME.onnx, by its full name) in
    $FERML_MODEL_DIR, else shipped."""
    candidate = Path(name_or_path)
    model_dir = os.environ.get("FERML_MODEL_DIR")
    if candidate.suffix == ".onnx" and not candidate.exists() and model_dir and len(candidate.parts) == 1:
        candidate = Path(model_dir) / candidate.name
    if candidate.suffix in MODEL_SUFFIXES or candidate.exists():
        if candidate.is_file():
            return candidate
        kind = "ONNX model" if candidate.suffix == ".onnx" else "checkpoint"
        raise ModelNotFoundError(f"{candidate}: no such {kind} file")
    places = []
    if model_dir:
        places.append(Path(model_dir) / f"{name_or_path}.pt")
    places.append(WEIGHTS_DIR / f"{name_or_path}.pt")
    for place in places:
        if place.is_file():
            return place
    where = " or ".join(str(p.parent) for p in places)
    raise ModelNotFoundError(
        f"no trained weights for model {name_or_path!r} (looked in {where}). Train them with:\n"
        f"  {train_hint(name_or_path)}"
    )


INFERENCE_PATHS = "inference.json"


def chosen_precision(key: str, device) -> str:
    """The precision measured for this network (``python -m ferml paths``): bf16 with
    channels-last where it changed at most 0.1 % of the predictions on FER2013 PublicTest,
    else float32; float32 on hardware without native bf16."""
    entry = inference_paths().get(key)
    if entry and entry.get("precision") == "bf16" and bf16_is_fast(device):
        return "bf16"
    return "fp32"


def inference_paths() -> dict:
    """The measured inference path of each network by content hash: the shipped weights'
    ``inference.json`` and $FERML_MODEL_DIR's."""
    import json

    paths = {}
    folders = [WEIGHTS_DIR] + ([Path(os.environ["FERML_MODEL_DIR"])] if os.environ.get("FERML_MODEL_DIR") else [])
    for folder in folders:
        try:
            paths.update(json.loads((folder / INFERENCE_PATHS).read_text()))
        except (OSError, ValueError):
            continue
    return paths


def resize_arrays(batch: np.ndarray, size: int) -> np.ndarray:
    """Prepared (N, C, S, S) arrays at another input size (an ensemble member's own)."""
    if batch.shape[-1] == size or not len(batch):
        return batch
    return np.stack([to_model_array(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0), size, a.shape[0])
                     for a in batch])


class Predictor:
    """A loaded checkpoint that classifies images, binning retroactively when asked, with the
    test-time augmentation its checkpoint names (or ``tta``, to compare others). An ensemble
    checkpoint averages its members' probabilities, each member binned into the ensemble's
    label set with its own preprocessing and test-time augmentation."""

    def __init__(self, path, device: str = "cpu", batch_size: int = 256, tta: str | None = None,
                 checkpoint: dict | None = None, key: str | None = None):
        self.path = Path(path)
        self.checkpoint = checkpoint if checkpoint is not None else read_checkpoint(self.path)
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.name = self.checkpoint["model"].get("display_name") or self.path.stem
        self.classes: list[str] = list(self.checkpoint["labels"]["classes"])
        self.label_set: str = self.checkpoint["labels"]["set"]
        # who the network is, by content: its file's sha256, a member's own, or the
        # ensemble's and its place in it (the prediction store and the inference paths key on it)
        self.key = key or self.checkpoint.get("file_sha256") or file_sha256(self.path)
        self.members = [Predictor(self.path, device, batch_size, tta, member,
                                  member.get("file_sha256") or f"{self.key}#{i}")
                        for i, member in enumerate(self.checkpoint.get("members", []))]
        self._model = None
        if self.members:
            self.preprocessor = max(self.members, key=lambda m: m.input_size).preprocessor
        else:
            self.preprocessor = Preprocessor.from_dict(self.checkpoint["preprocess"])
        self.input_size = self.preprocessor.input_size
        self.channels = self.preprocessor.channels
        self.tta = check_tta(tta or self.checkpoint.get("tta", "none"))
        self.precision = "fp32" if self.members else chosen_precision(self.key, self.device)

    @property
    def model(self) -> torch.nn.Module | None:
        """The network, built on first use: a report whose predictions are all stored never
        builds it. None for an ensemble (its members have theirs)."""
        if self._model is None and not self.members:
            self._model = (build_model(self.checkpoint, self.path).eval()
                           .to(self.device, memory_format=torch.channels_last))
        return self._model

    @model.setter
    def model(self, network: torch.nn.Module) -> None:
        self._model = network

    @classmethod
    def from_name(cls, name_or_path, **kwargs) -> "Predictor":
        """The model of that name or file: a checkpoint, or an ONNX model (``OnnxPredictor``,
        which answers the same way)."""
        path = resolve_model(name_or_path)
        if path.suffix == ".onnx":
            from .onnxmodel import OnnxPredictor

            return OnnxPredictor(path, **kwargs)
        return cls(path, **kwargs)

    def prepare_images(self, images) -> np.ndarray:
        """uint8 (N, C, S, S) from a list of (H, W) / (H, W, 3) uint8 arrays."""
        return np.stack([to_model_array(np.asarray(img), self.input_size, self.channels) for img in images])

    @torch.no_grad()
    def predict_proba_arrays(self, batch: np.ndarray, label_set: str | None = None) -> np.ndarray:
        """Softmax over the model's classes, or summed into the bins of ``label_set``."""
        if self.members:
            by_size = {size: resize_arrays(batch, size) for size in {m.input_size for m in self.members}}
            return self.combine([m.predict_proba_arrays(by_size[m.input_size]) for m in self.members], label_set)
        out = []
        for start in range(0, len(batch), self.batch_size):
            x = self.preprocessor(torch.from_numpy(batch[start:start + self.batch_size]))
            out.append(predict_probabilities(self.model, x, self.tta, self.batch_size, self.device,
                                             self.precision).numpy())
        probs = np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)
        return self.in_labels(probs, label_set)

    def in_labels(self, probs: np.ndarray, label_set=None) -> np.ndarray:
        """Probabilities over the model's classes, summed into the bins of ``label_set``."""
        if label_set is None or label_set == self.label_set:
            return probs
        return probs @ binning_matrix(self.classes, label_set)

    def combine(self, member_probs: list[np.ndarray], label_set=None) -> np.ndarray:
        """An ensemble's probabilities from its members' own (each over its classes): their
        mean, each binned into the ensemble's label set first."""
        probs = np.mean([m.in_labels(p, self.label_set) for m, p in zip(self.members, member_probs)], axis=0)
        return self.in_labels(probs, label_set)

    def predict_proba(self, images, label_set: str | None = None) -> np.ndarray:
        return self.predict_proba_arrays(self.prepare_images(images), label_set)

    def predict(self, images, label_set: str | None = None) -> list[str]:
        classes = check_label_set(label_set) if label_set else self.classes
        return [classes[i] for i in self.predict_proba(images, label_set).argmax(1)]
