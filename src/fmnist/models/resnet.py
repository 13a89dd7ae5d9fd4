"""A small residual CNN for 28x28 images, the backbone of the modern recipes (`fast`, `best`).

Layout (after airbench's CIFAR-10 nets, scaled to 28x28 grayscale): a 3x3 stem, then one stage per width,
each `conv3x3 -> maxpool 2 -> BN -> ReLU` followed by `blocks` residual blocks (conv-BN-ReLU-conv-BN + skip),
then global max+mean pooling and a linear classifier. Spatial sizes for 28x28 input: 28 -> 14 -> 7 -> 3.
Pooling right after the widening conv keeps most multiply-accumulates at the lower resolution.
"""

from __future__ import annotations

import torch
from torch import nn

from fmnist.models.layers import Classifier


def conv_bn(in_ch: int, out_ch: int) -> list[nn.Module]:
    """3x3 conv (no bias: BN follows) + BatchNorm."""
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch)]


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(channels, channels), nn.ReLU(inplace=True), *conv_bn(channels, channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class Stage(nn.Sequential):
    """Widen with a 3x3 conv, halve the resolution, then `blocks` residual blocks."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
        layers += [ResidualBlock(out_ch) for _ in range(blocks)]
        super().__init__(*layers)


class ResNet(nn.Module):
    """Stem + len(widths) stages + global max/mean pool + linear; returns logits."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        stem: int = 32,
        widths: tuple[int, ...] | list[int] = (64, 128, 256),
        blocks: tuple[int, ...] | list[int] = (1, 1, 1),
        image_size: int = 28,
    ) -> None:
        super().__init__()
        widths, blocks = tuple(widths), tuple(blocks)
        if len(blocks) != len(widths):
            raise ValueError("widths and blocks must have the same length")
        self.stem = nn.Sequential(*conv_bn(in_channels, stem), nn.ReLU(inplace=True))
        stages, prev = [], stem
        for w, b in zip(widths, blocks):
            stages.append(Stage(prev, w, b))
            prev = w
        self.stages = nn.Sequential(*stages)
        # Max and mean pooling concatenated: max finds a part anywhere, mean weighs the whole garment.
        self.head = Classifier(2 * prev, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Zero-init the last BN of each residual body: every block starts as the identity (Goyal et al. 2017).
        for m in self.modules():
            if isinstance(m, ResidualBlock):
                nn.init.zeros_(m.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        pooled = torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)
        return self.head(pooled)
