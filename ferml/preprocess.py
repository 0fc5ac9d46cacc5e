"""Normalization (thesis 6.2.2) and batch augmentation (thesis 6.2.1), as tensor ops.

Image normalization: per image and channel, subtract the mean and scale to a (biased)
standard deviation of 3.125. Pixel normalization: per pixel position and channel,
subtract the training set's mean and divide by its (biased) standard deviation; the
statistics travel inside the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_STD = 3.125
EPS = 1e-6


def image_normalize(x: torch.Tensor, target_std: float = IMAGE_STD) -> torch.Tensor:
    """x: float (N, C, H, W). A flat image (std 0) becomes all zeros instead of NaN."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    centred = x - mean
    std = centred.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
    return centred / std.clamp_min(EPS) * target_std


def pixel_statistics(x: torch.Tensor, batch: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position mean and biased std over a data set (float64 sums for accuracy)."""
    total = torch.zeros(x.shape[1:], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1:], dtype=torch.float64)
    for start in range(0, len(x), batch):
        chunk = x[start:start + batch].double()
        total += chunk.sum(0)
        total_sq += chunk.pow(2).sum(0)
    mean = total / len(x)
    var = (total_sq / len(x) - mean.pow(2)).clamp_min(0)
    return mean.float(), var.sqrt().float()


@dataclass
class Preprocessor:
    """Turns uint8 (N, C, S, S) batches into the model's input; saved in checkpoints."""

    input_size: int
    channels: int
    image_norm: bool = True
    target_std: float = IMAGE_STD
    pixel_mean: torch.Tensor | None = None
    pixel_std: torch.Tensor | None = None

    @property
    def pixel_norm(self) -> bool:
        return self.pixel_mean is not None

    def fit(self, images: np.ndarray | torch.Tensor, pixel_norm: bool = True) -> "Preprocessor":
        """Take pixel-normalization statistics from (training) images."""
        self.pixel_mean = self.pixel_std = None
        if pixel_norm:
            self.pixel_mean, self.pixel_std = pixel_statistics(self._image_stage(torch.as_tensor(images)))
        return self

    def _image_stage(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float()
        return image_normalize(x, self.target_std) if self.image_norm else x

    def __call__(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = self._image_stage(torch.as_tensor(batch))
        if self.pixel_mean is not None:
            mean = self.pixel_mean.to(x.device)
            std = self.pixel_std.to(x.device).clamp_min(EPS)
            x = (x - mean) / std
        return x

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size, "channels": self.channels,
            "image_norm": self.image_norm, "target_std": self.target_std,
            "pixel_mean": self.pixel_mean, "pixel_std": self.pixel_std,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessor":
        return cls(int(d["input_size"]), int(d["channels"]), bool(d["image_norm"]), float(d["target_std"]),
                   None if d.get("pixel_mean") is None else d["pixel_mean"].float(),
                   None if d.get("pixel_std") is None else d["pixel_std"].float())


def augment_batch(x: torch.Tensor, generator: torch.Generator | None = None, flip_p: float = 0.5,
                  max_rotation: float = 45.0, max_enlarge: int = 12) -> torch.Tensor:
    """Random flip, rotation in [-max_rotation, max_rotation] degrees, enlargement by 0 to
    ``max_enlarge`` px and a random crop back to the input size, for a whole batch at once.

    One affine sampling grid per image, on the batch's own device (a ``generator`` must
    live there too). Values outside the source are 0, the mean after normalization.
    """
    n, _, h, w = x.shape
    dev = x.device

    def rand(size):
        return torch.rand(size, generator=generator, device=dev)

    flip = torch.where(rand(n) < flip_p, -1.0, 1.0)
    angle = (rand(n) * 2 - 1) * math.radians(max_rotation)
    enlarge = rand(n) * max_enlarge  # pixels added to the side
    scale = w / (w + enlarge)  # output -> source coordinate scale
    # crop offset inside the enlarged image, relative to its centre, in source units
    shift_x = (rand(n) - 0.5) * enlarge * 2 / (w + enlarge)
    shift_y = (rand(n) - 0.5) * enlarge * 2 / (h + enlarge)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos * scale * flip, -sin * scale, shift_x], 1),
        torch.stack([sin * scale * flip, cos * scale, shift_y], 1),
    ], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
