"""Patch whitening: a frozen first convolution whose filters decorrelate the input's k x k patches.

After airbench (Jordan 2024): the filters are the eigenvectors of the training patches' covariance, each scaled
by 1 / sqrt(eigenvalue + eps), so the layer's outputs over the training patches have (nearly) unit variance and
no correlation; each filter is kept with its negation, so a ReLU after the layer loses nothing. The weights are
computed once from training images before the first step and never trained (the net learns from whitened input
at once instead of spending its first epochs learning the same decorrelation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def patch_covariance(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [C*k*k], covariance [C*k*k, C*k*k]) of the k x k patches of images x [N, C, H, W], in float64."""
    patches = F.unfold(x.double(), k)  # [N, C*k*k, L]
    flat = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / max(1, len(flat) - 1)


def whitening_filters(x: torch.Tensor, k: int, eps: float = 5e-4) -> torch.Tensor:
    """Filters [2*C*k*k, C, k, k]: the eigenvectors of the k x k patch covariance of x, scaled by
    1 / sqrt(eigenvalue + eps), strongest first, each followed by its negation."""
    c = x.shape[1]
    _, cov = patch_covariance(x, k)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    order = eigenvalues.flip(0).clamp_min(0), eigenvectors.flip(1)
    scaled = (order[1] / torch.sqrt(order[0] + eps)).T  # rows are filters
    filters = scaled.reshape(-1, c, k, k)
    return torch.cat([filters, -filters], dim=1).reshape(-1, c, k, k).float()


class PatchWhitening(nn.Conv2d):
    """A k x k convolution (frozen weights, trainable bias) with 2*C*k*k outputs. At stride 1 the output keeps
    the input's size (odd k); at stride 2 it is half of it (28 -> 14), the padding chosen so either holds.

    Until `fit` is called its weights are zero; the training loop calls it with training images before the
    first step, and a saved model carries the fitted weights in its state dict.
    """

    def __init__(self, in_channels: int, k: int = 3, stride: int = 1) -> None:
        padding = k // 2 if stride == 1 else (k - 1) // 2
        super().__init__(in_channels, 2 * in_channels * k * k, k, stride=stride, padding=padding, bias=True)
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Set the filters from images x [N, C, H, W] (normalized as the model will see them)."""
        self.weight.copy_(whitening_filters(x.float().cpu(), self.kernel_size[0]).to(self.weight))
