"""Parameters and FLOPs per image of every model (thesis Fig. 20), measured on the built model."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import create_model, get_entry, list_models


def count_flops(model: torch.nn.Module, input_size: int, in_channels: int) -> int:
    """FLOPs of one forward pass on one image (a multiply-accumulate counts 2)."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, in_channels, input_size, input_size))
    return int(counter.get_total_flops())


def zoo_table(names=None, in_channels: int = 1) -> list[dict]:
    rows = []
    for name in names or list_models():
        entry = get_entry(name)
        model = create_model(name, num_classes=7, in_channels=in_channels)
        flops = count_flops(model, entry.input_size, in_channels)
        rows.append({"name": name, "family": entry.family, "input_size": entry.input_size,
                     "in_channels": in_channels, "params": sum(p.numel() for p in model.parameters()),
                     "flops": flops, "macs": flops // 2})
    return rows
