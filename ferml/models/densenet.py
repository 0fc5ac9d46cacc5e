"""DenseNet-121/169/161 and their reduced forms for small faces (thesis 6.3.3, Table 6).

Input block: 7x7 stride-1 convolution, 3x3 stride-2 max-pool (42 -> 21 px). Dense blocks
of BN-ReLU-1x1 conv (4k filters) then BN-ReLU-3x3 conv (k filters); transition blocks
BN-ReLU-1x1 compression conv (theta = 0.5)-dropout-2x2 average pool. Global average
pooling and one FC layer.

Choices where the thesis is vague:
- The dropout schedule has one rate per dense block; it follows every 3x3 convolution
  of that block and the compression conv of the transition after it.
- Table 6 lists transition block 3 for every variant, the reduced ones included, so a
  reduced net ends with that transition (down to 2x2 at 42 px) and then the pooling.
  The full nets end their last dense block with BN-ReLU, as in Huang et al.
"""
from __future__ import annotations

import torch
from torch import nn

# name: (growth rate, conv blocks per dense block, initial filters)
SPECS = {
    "dense121": (32, (6, 12, 24, 16), 64),
    "dense169": (32, (6, 12, 32, 32), 64),
    "dense161": (48, (6, 12, 36, 24), 96),
}
COMPRESSION = 0.5
BOTTLENECK_WIDTH = 4


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, rate):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, BOTTLENECK_WIDTH * growth, 1, bias=False),
            nn.BatchNorm2d(BOTTLENECK_WIDTH * growth), nn.ReLU(inplace=True),
            nn.Conv2d(BOTTLENECK_WIDTH * growth, growth, 3, padding=1, bias=False),
            nn.Dropout(rate),
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def transition(cin, cout, rate):
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False),
        nn.Dropout(rate), nn.AvgPool2d(2, 2),
    )


class DenseNet(nn.Module):
    def __init__(self, growth, blocks, init_features, reduced=False, num_classes=7,
                 in_channels=1, dropout=(0.05, 0.2, 0.2, 0.3)):
        super().__init__()
        if reduced:
            blocks = blocks[:-1]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, init_features, 7, 1, padding=3, bias=False),
            nn.BatchNorm2d(init_features), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, padding=1),
        ]
        channels = init_features
        for i, (count, rate) in enumerate(zip(blocks, dropout)):
            for _ in range(count):
                layers.append(DenseLayer(channels, growth, rate))
                channels += growth
            last = i == len(blocks) - 1
            if not last or reduced:
                out = int(channels * COMPRESSION)
                layers.append(transition(channels, out, rate))
                channels = out
        if not reduced:
            layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def build(name: str, input_size: int):
    base, _, rest = name.partition("_")
    growth, blocks, init = SPECS[base]
    reduced = rest.startswith("red")

    def builder(num_classes=7, in_channels=1, dropout=(0.05, 0.2, 0.2, 0.3)):
        return DenseNet(growth, blocks, init, reduced, num_classes, in_channels, dropout)

    return builder
