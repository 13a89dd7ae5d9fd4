"""A small residual CNN for 28x28 images, the backbone of the modern recipes (`fast`, `best`).

Layout (after airbench's CIFAR-10 nets, scaled to 28x28 grayscale): a 3x3 stem, then one stage per width,
each `conv3x3 -> maxpool 2 -> BN -> ReLU` followed by `blocks` residual blocks (conv-BN-ReLU-conv-BN + skip),
then global max+mean pooling and a linear classifier. Spatial sizes for 28x28 input: 28 -> 14 -> 7 -> 3.
Pooling right after the widening conv keeps most multiply-accumulates at the lower resolution.

airbench's methods, each off by default (the defaults build the same modules and state-dict keys as before):
`whiten=k` replaces the stem with a frozen k x k patch-whitening conv (fmnist.models.whiten; its 2*k*k
outputs take the place of `stem`, which is then unused); `dirac=True` starts every conv as the identity on its
first in_channels filters; `bn_weight=False` freezes every BatchNorm weight at 1 (only the biases train);
`bn_momentum` is PyTorch's BatchNorm momentum (the weight of the newest batch in the running statistics);
`logit_scale` multiplies the logits. `stem_stride=2` makes the stem (whitened or not) halve the resolution, so
every stage runs on 14x14 and below (a `fast`-sized step about 17-20% shorter, but 0.3 points lower held out at
the same training time and 0.7 at the same epochs, 3 seeds each: docs/results.md).
"""

from __future__ import annotations

import torch
from torch import nn

from fmnist.errors import UsageError
from fmnist.models.layers import Classifier
from fmnist.models.whiten import PatchWhitening
from fmnist.ops import pool_norm_relu as fused
from fmnist.ops import small_conv


class Conv3x3(nn.Conv2d):
    """A 3x3 convolution, padding 1, no bias (BN follows). Training on small maps on a CPU, its weight gradient is
    computed as a forward convolution (fmnist.ops.small_conv: same values, several times faster at 3x3)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and small_conv.applies(x, self.weight):
            return small_conv.conv3x3(x, self.weight)
        return super().forward(x)


def conv_bn(in_ch: int, out_ch: int, stride: int = 1) -> list[nn.Module]:
    """3x3 conv (no bias: BN follows) + BatchNorm."""
    return [Conv3x3(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch)]


class ResidualBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*conv_bn(channels, channels), nn.ReLU(inplace=True), *conv_bn(channels, channels))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class Stage(nn.Sequential):
    """Widen with a 3x3 conv, halve the resolution, then `blocks` residual blocks.

    In bf16 training on a CPU the pool, BatchNorm and ReLU run as one fused kernel (fmnist.ops.pool_norm_relu:
    the same values, the same state dict); elsewhere, layer by layer."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, pool: bool = True) -> None:
        layers: list[nn.Module] = [
            Conv3x3(in_ch, out_ch),
            nn.MaxPool2d(2) if pool else nn.Identity(),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
        layers += [ResidualBlock(out_ch) for _ in range(blocks)]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self[0](x)
        if isinstance(self[1], nn.MaxPool2d) and fused.applies(x, self[2]):
            x = fused.pool_norm_relu(x, self[2])
        else:
            x = self[3](self[2](self[1](x)))
        for block in list(self)[4:]:
            x = block(x)
        return x


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
        whiten: int = 0,
        dirac: bool = False,
        bn_weight: bool = True,
        bn_momentum: float = 0.1,
        logit_scale: float = 1.0,
        stem_stride: int = 1,
        last_pool: bool = True,
    ) -> None:
        super().__init__()
        widths, blocks = tuple(widths), tuple(blocks)
        if len(blocks) != len(widths):
            raise UsageError("widths and blocks must have the same length")
        if not (isinstance(whiten, int) and 0 <= whiten <= 7):
            raise UsageError(f"whiten must be a patch size 1..7, or 0 for none; got {whiten!r}")
        if stem_stride not in (1, 2):
            raise UsageError(f"stem_stride must be 1 or 2; got {stem_stride!r}")
        self.logit_scale = float(logit_scale)
        if whiten:
            white = PatchWhitening(in_channels, whiten, stride=stem_stride)
            self.stem = nn.Sequential(white, nn.ReLU(inplace=True))
            stem = white.out_channels
        else:
            self.stem = nn.Sequential(*conv_bn(in_channels, stem, stem_stride), nn.ReLU(inplace=True))
        stages, prev = [], stem
        for i, (w, b) in enumerate(zip(widths, blocks)):
            stages.append(Stage(prev, w, b, pool=last_pool or i + 1 < len(widths)))
            prev = w
        self.stages = nn.Sequential(*stages)
        # Max and mean pooling concatenated: max finds a part anywhere, mean weighs the whole garment.
        self.head = Classifier(2 * prev, num_classes)
        for m in self.modules():
            if isinstance(m, PatchWhitening):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if dirac:
                    dirac_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.momentum = bn_momentum
                m.weight.requires_grad_(bn_weight)
        # Zero-init the last BN of each residual body: every block starts as the identity (Goyal et al. 2017).
        # With frozen BN weights (kept at 1) the block keeps its random start instead.
        if bn_weight:
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    nn.init.zeros_(m.body[-1].weight)

    def fit_whitening(self, x: torch.Tensor) -> None:
        """Fit the patch-whitening stem (if any) to normalized training images x [N, C, H, W]."""
        if isinstance(self.stem[0], PatchWhitening):
            self.stem[0].fit(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        pooled = torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)
        out = self.head(pooled)
        return out * self.logit_scale if self.logit_scale != 1.0 else out


@torch.no_grad()
def dirac_(weight: torch.Tensor) -> torch.Tensor:
    """Set a conv's first min(out, in) filters to the identity on the matching input channel (the rest keep
    their values), as airbench starts its convolutions: at first each layer passes its input through."""
    n = min(weight.shape[0], weight.shape[1])
    nn.init.dirac_(weight[:n, :n])
    return weight
