"""ResNet-18/34/50 for small faces (thesis 6.3.2, Table 5).

7x7 stride-2 stem, 3x3 stride-2 max-pool, four stages of basic (18, 34) or bottleneck
(50) blocks with 64/128/256/512 filters, global average pooling, one FC layer.

Choices where the thesis is vague:
- Downsampling shortcuts are 1x1 projection convolutions with batch norm (option B).
- "Dropout appears in between each residual block": the schedule has one rate per stage
  ([0.05, 0.2, 0.2, 0.3]), applied after every block of that stage.
- Convolutions before batch norm carry no bias (the norm's shift replaces it).
"""
from __future__ import annotations

import torch
from torch import nn

# name: (block, blocks per stage)
SPECS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
WIDTHS = (64, 128, 256, 512)


def _conv_bn(cin, cout, kernel, stride=1):
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(*_conv_bn(cin, width, 3, stride), nn.ReLU(inplace=True), *_conv_bn(width, cout, 3))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, cin, width, stride):
        nn.Module.__init__(self)
        cout = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(cin, width, 1), nn.ReLU(inplace=True),
            *_conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
            *_conv_bn(width, cout, 1),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(*_conv_bn(cin, cout, 1, stride))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=7, in_channels=1, dropout=(0.05, 0.2, 0.2, 0.3)):
        super().__init__()
        block_cls = BasicBlock if block == "basic" else Bottleneck
        self.stem = nn.Sequential(
            *_conv_bn(in_channels, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, padding=1)
        )
        stages = []
        channels = 64
        for i, (width, count, rate) in enumerate(zip(WIDTHS, layers, dropout)):
            blocks = []
            for j in range(count):
                blocks += [block_cls(channels, width, 2 if (i > 0 and j == 0) else 1), nn.Dropout(rate)]
                channels = width * block_cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build(name: str, input_size: int):
    block, layers = SPECS[name]

    def builder(num_classes=7, in_channels=1, dropout=(0.05, 0.2, 0.2, 0.3)):
        return ResNet(block, layers, num_classes, in_channels, dropout)

    return builder
