"""Run a trained model (found by ``modelfiles``) on images in batches."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import build_model, file_sha256, read_checkpoint
from .data import to_model_array
from .device import bf16_is_fast, keep_freed_memory, pick_device
from .labels import binning_matrix
from .modelfiles import inference_paths, resolve_model
from .preprocess import Preprocessor
from .tta import check_tta, predict_probabilities


CPU_BATCH_PIXELS = 16 * 100 * 100  # the most image pixels one forward pass takes on a CPU


def chosen_precision(key: str, device) -> str:
    """The inference path measured for this network (``python -m ferml paths``): the fastest
    of float32, bf16 autocast with channels-last and ONNX Runtime among those that changed
    at most 0.1 % of float32's predictions on FER2013 PublicTest. float32 where the path
    needs what this device lacks (native bf16; ONNX Runtime runs on the CPU only)."""
    chosen = (inference_paths().get(key) or {}).get("precision")
    if chosen == "bf16" and bf16_is_fast(device):
        return "bf16"
    if chosen == "onnxruntime" and device.type == "cpu":
        return "onnxruntime"
    return "fp32"


def onnx_cache_dir() -> Path:
    """Where networks run with ONNX Runtime keep their exported graphs ($FERML_CACHE_DIR/onnx,
    by default ~/.cache/ferml/onnx): exported once per machine, on first use."""
    base = os.environ.get("FERML_CACHE_DIR") or Path.home() / ".cache" / "ferml"
    return Path(base) / "onnx"


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
        self._runtime = None
        if self.members:
            self.preprocessor = max(self.members, key=lambda m: m.input_size).preprocessor
        else:
            self.preprocessor = Preprocessor.from_dict(self.checkpoint["preprocess"])
        self.input_size = self.preprocessor.input_size
        self.channels = self.preprocessor.channels
        if self.device.type == "cpu":
            # a CPU runs faces fastest in small batches (dense121_100 in float32: 8.8 images/s
            # at batch 256, 15.0 at 16; dense121: 69 at 256, 102 at 90; both measured before
            # keep_freed_memory): cut to a pixel budget
            self.batch_size = max(1, min(batch_size, CPU_BATCH_PIXELS // (self.channels * self.input_size ** 2)))
        self.tta = check_tta(tta or self.checkpoint.get("tta", "none"))
        self.precision = "fp32" if self.members else chosen_precision(self.key, self.device)

    @property
    def model(self) -> torch.nn.Module | None:
        """The network, built on first use: a report whose predictions are all stored never
        builds it. None for an ensemble (its members have theirs)."""
        if self._model is None and not self.members:
            keep_freed_memory()
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
        if self.precision == "onnxruntime" and len(batch):
            return self.in_labels(self.runtime(batch[:8]).predict_proba_arrays(batch), label_set)
        return self.in_labels(self.torch_probabilities(batch, self.precision), label_set)

    @torch.no_grad()
    def torch_probabilities(self, batch: np.ndarray, precision: str = "fp32") -> np.ndarray:
        """Softmax over the model's classes from PyTorch at ``precision`` (one network)."""
        out = []
        for start in range(0, len(batch), self.batch_size):
            x = self.preprocessor(torch.from_numpy(batch[start:start + self.batch_size]))
            out.append(predict_probabilities(self.model, x, self.tta, self.batch_size, self.device,
                                             precision).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def runtime(self, check: np.ndarray):
        """This network under ONNX Runtime: its export in ``onnx_cache_dir()``, written on
        first use and checked against PyTorch on ``check`` (a few of the images at hand)."""
        if self._runtime is None:
            from .onnxmodel import OnnxPredictor, export_onnx

            path = onnx_cache_dir() / f"{self.key.replace('#', '-')}-{self.tta}.onnx"
            if not path.is_file():
                # written aside and moved into place, so a parallel process never reads half a file
                partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
                export_onnx(self, partial, check)
                os.replace(partial, path)
            self._runtime = OnnxPredictor(path, batch_size=self.batch_size)
        return self._runtime

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
