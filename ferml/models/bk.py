"""The BK family (thesis 6.3.1, Tables 3 and 4): plain conv nets after Sang et al.

A spec is a list of layers: ``("conv", filters, kernel)``, ``("max", kernel, stride)``,
``("avg", kernel, stride)``, then the hidden fully connected widths.

Choices where the thesis is vague:
- Pools have no padding (Keras' "valid" default); convolutions are "same" padded except
  in bkmin.
- The dropout schedule ``[0.05, 0.2, 0.4]`` is read from the earliest to the latest
  dropout point. The points are the flattened conv features and then each hidden FC
  layer (never the output). bkvgg12 has three points and uses the whole schedule;
  bkstart has two and uses the last two rates (0.2 on the conv features, 0.4 on FC3072).
- No batch normalization (as in the thesis); weights get He (Kaiming) initialization,
  without which these nets sat at the majority class for epochs.
"""
from __future__ import annotations

import torch
from torch import nn

BKSTART = [("conv", 32, 5), ("max", 3, 2), ("conv", 32, 4), ("avg", 3, 2), ("conv", 64, 5), ("avg", 3, 2)]
BKVGG12 = [
    ("conv", 32, 3), ("conv", 32, 3), ("max", 2, 2),
    ("conv", 64, 3), ("conv", 64, 3), ("max", 2, 2),
    ("conv", 128, 3), ("conv", 128, 3), ("max", 2, 2),
    ("conv", 256, 3), ("conv", 256, 3), ("conv", 256, 3),
]
# Andreas100: BKVGG12 for 100 px input with the filters doubled to 6x6 (thesis 6.3.1.4).
ANDREAS100 = [(kind, a, 6) if kind == "conv" else (kind, a, b) for kind, a, b in BKVGG12]

SPECS = {
    "bkstart": (BKSTART, [3072], True),
    "bkmin": (BKSTART, [3072], False),
    "bkvgg12": (BKVGG12, [256, 256], True),
    "andreas100": (ANDREAS100, [256, 256], True),
}


class BKNet(nn.Module):
    def __init__(self, spec, hidden, padded, input_size, num_classes=7, in_channels=1,
                 dropout=(0.05, 0.2, 0.4)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for kind, a, b in spec:
            if kind == "conv":
                if padded:
                    # "same" padding; for even kernels the extra row/column goes right/bottom.
                    layers.append(nn.ZeroPad2d(((b - 1) // 2, b // 2, (b - 1) // 2, b // 2)))
                layers += [nn.Conv2d(channels, a, b), nn.ReLU(inplace=True)]
                channels = a
            elif kind == "max":
                layers.append(nn.MaxPool2d(a, b))
            else:
                layers.append(nn.AvgPool2d(a, b))
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, input_size, input_size)).numel()
        rates = list(dropout)[-(len(hidden) + 1):]
        head: list[nn.Module] = [nn.Flatten(), nn.Dropout(rates[0])]
        width = flat
        for size, rate in zip(hidden, rates[1:]):
            head += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(rate)]
            width = size
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build(name: str, input_size: int):
    spec, hidden, padded = SPECS[name]

    def builder(num_classes=7, in_channels=1, dropout=(0.05, 0.2, 0.4)):
        return BKNet(spec, hidden, padded, input_size, num_classes, in_channels, dropout)

    return builder
