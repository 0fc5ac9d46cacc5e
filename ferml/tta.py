"""Test-time augmentation: a model's softmax averaged over flipped or cropped views.

The mode is chosen at training time and stored in the checkpoint, so scoring, the
benchmark and the live demo all apply it the same way (thesis 6.2.1 augments only in
training; averaging views is the usual cheap gain at test time).

- ``none``: the image as it is.
- ``flip``: the image and its mirror image (2 views).
- ``crops``: ten-crop: the image enlarged by a seventh (6 px at 42 px, as the training
  augmentation enlarges by 0 to 12 px), its four corner crops and centre crop back at the
  input size, and the mirror image of each (10 views).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .device import autocast

TTA_MODES = ("none", "flip", "crops")


def check_tta(mode: str) -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose {', '.join(TTA_MODES)}")
    return mode


def tta_views(x: torch.Tensor, mode: str, size: int | None = None) -> list[torch.Tensor]:
    """The views of a preprocessed batch (N, C, S, S) that ``mode`` averages over; ``size``
    is S where the batch's shape is not a plain number (a graph being traced for export)."""
    check_tta(mode)
    if mode == "none":
        return [x]
    if mode == "flip":
        return [x, x.flip(3)]
    size = x.shape[-1] if size is None else size
    big = size + max(2, round(size / 7))
    enlarged = F.interpolate(x, size=(big, big), mode="bilinear", align_corners=False)
    edge = big - size
    mid = edge // 2
    crops = [enlarged[..., top:top + size, left:left + size]
             for top, left in ((0, 0), (0, edge), (edge, 0), (edge, edge), (mid, mid))]
    return crops + [c.flip(3) for c in crops]


@torch.no_grad()
def predict_probabilities(model: torch.nn.Module, x: torch.Tensor, tta: str = "none", batch_size: int = 256,
                          device: torch.device | None = None, precision: str = "fp32") -> torch.Tensor:
    """Softmax (N, classes) of a preprocessed batch on the CPU, averaged over the TTA views."""
    device = device or next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        views = tta_views(xb, tta)
        total = None
        for view in views:
            with autocast(device, precision):
                probs = torch.softmax(model(view.contiguous(memory_format=torch.channels_last)).float(), 1)
            total = probs if total is None else total + probs
        out.append((total / len(views)).cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)
